// A conv width of 0.

vggdsl_macros::vgg!(pub Net<cfg = [0, M, 128, 512]>);

fn main() {}
