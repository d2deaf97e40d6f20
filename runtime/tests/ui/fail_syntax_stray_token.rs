// A stray word after a model.

vggdsl_runtime::vgg! {
    pub model Net {
        cfg = [64, M, 128, 512]
    }
    stray
}

fn main() {}
