// A conv width that is not a whole number.

vggdsl_macros::vgg!(pub Net<cfg = [64, M, 64.5, 512]>);

fn main() {}
