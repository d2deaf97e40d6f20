// An init rule without `=`.

vggdsl_macros::vgg! {
    pub model Net {
        init = { conv.weight normal(0, 0.01) }
    }
}

fn main() {}
