// The file form takes nothing after the path.

vggdsl_macros::vgg!("models/net.vgg" bn = true);

fn main() {}
