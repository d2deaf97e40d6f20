// The compact form without its closing `>`.

vggdsl_runtime::vgg!(pub Net<cfg = default, bn = true);

fn main() {}
