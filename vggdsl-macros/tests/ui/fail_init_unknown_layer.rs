// An init rule for a layer kind that does not exist.

vggdsl_macros::vgg! {
    pub model Net {
        init = { convv.weight = normal(0, 0.01) }
    }
}

fn main() {}
