// A file with two errors (runtime/tests/models/invalid.vgg): each names the file and line:col.

vggdsl_macros::vgg!("../../../../runtime/tests/models/invalid.vgg");

fn main() {}
