// An unknown key is underlined, with the closest known one.

vggdsl_macros::vgg!(pub Net<cfg = default, bnn = true>);

fn main() {}
