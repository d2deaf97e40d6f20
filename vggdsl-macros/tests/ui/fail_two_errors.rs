// Independent errors are all reported at once.

vggdsl_macros::vgg!(pub Net<cfg = [64, M, 128, 512], bnn = true, compress_rate = [0.5, 1.2]>);

fn main() {}
