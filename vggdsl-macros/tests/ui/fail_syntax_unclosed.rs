// The compact form without its closing `>`.

vggdsl_macros::vgg!(pub Net<cfg = default, bn = true);

fn main() {}
