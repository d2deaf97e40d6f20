// An init rule with an unknown distribution.

vggdsl_macros::vgg! {
    pub model Net {
        init = { conv.weight = gaussian(0, 0.01) }
    }
}

fn main() {}
