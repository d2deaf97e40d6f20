// Four pools shrink an 8×8 input below 1×1: the fourth `M` is underlined.

vggdsl_macros::vgg!(pub Net<input = [3, 8, 8], cfg = [64, M, 64, M, 64, M, 64, M, 512]>);

fn main() {}
