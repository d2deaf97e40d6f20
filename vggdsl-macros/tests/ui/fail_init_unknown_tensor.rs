// An init rule for a tensor that does not exist.

vggdsl_macros::vgg! {
    pub model Net {
        init = { conv.weights = normal(0, 0.01) }
    }
}

fn main() {}
