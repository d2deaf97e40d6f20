// Two list items without a comma between them.

vggdsl_macros::vgg!(pub Net<cfg = [64, M 128, 512]>);

fn main() {}
