// The file form with a file that does not exist: the error names the resolved path.

vggdsl_macros::vgg!("models/missing.vgg");

fn main() {}
