// An init rule with an unknown distribution.

vggdsl_runtime::vgg! {
    pub model Net {
        init = { conv.weight = gaussian(0, 0.01) }
    }
}

fn main() {}
