// A stray token between two settings.

vggdsl_macros::vgg! {
    pub model Net {
        cfg = [64, M, 128, 512] @
        bn = false
    }
}

fn main() {}
