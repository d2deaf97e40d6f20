// A file with two errors: each names the file and line:col, at the string literal.

vggdsl_runtime::vgg!("../../../../runtime/tests/models/invalid.vgg");

fn main() {}
