// A setting without `=`.

vggdsl_runtime::vgg!(pub Net<cfg default>);

fn main() {}
