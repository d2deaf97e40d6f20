// A pruning rate outside [0, 1) is underlined alone.

vggdsl_macros::vgg!(pub Net<cfg = [64, M, 128, 512], compress_rate = [0.5, 1.2]>);

fn main() {}
