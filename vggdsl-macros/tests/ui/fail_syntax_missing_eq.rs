// A setting without `=`.

vggdsl_macros::vgg!(pub Net<cfg default>);

fn main() {}
