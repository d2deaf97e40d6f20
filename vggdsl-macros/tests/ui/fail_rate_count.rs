// Three rates for a cfg with two convs before the classifier width.

vggdsl_macros::vgg!(pub Net<cfg = [64, M, 128, M, 256], bn = false, num_classes = 100, compress_rate = [0.5]*3>);

fn main() {}
