// The file form takes nothing after the path.

vggdsl_runtime::vgg!("models/net.vgg" bn = true);

fn main() {}
