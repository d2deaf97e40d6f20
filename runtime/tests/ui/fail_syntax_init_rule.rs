// An init rule without `=`.

vggdsl_runtime::vgg! {
    pub model Net {
        init = { conv.weight normal(0, 0.01) }
    }
}

fn main() {}
