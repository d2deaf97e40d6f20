// A file with two errors (tests/ui/models/invalid.vgg): each names the file and line:col.

vggdsl_macros::vgg!("models/invalid.vgg");

fn main() {}
