//! How every diagnostic renders: its line:col and shape, checked for each case; colour only on
//! request; a byte-order mark accepted.

/// Renders the diagnostics of `src` (which must fail), checking each one's line:col and shape.
pub fn diagnose(src: &str, expected: &[(usize, usize)]) -> String {
    let d = match vggdsl::load(src, "bad.vgg") {
        Ok(_) => panic!("expected diagnostics for:\n{src}"),
        Err(d) => d,
    };
    let found: Vec<(usize, usize)> = d.items.iter().map(|i| i.line_col(src)).collect();
    assert_eq!(found, expected, "line:col of the diagnostics of:\n{src}");
    let rendered = d.render(false);
    for (item, (line, col)) in d.items.iter().zip(expected) {
        // One plain sentence and an optional one-line hint.
        assert!(!item.message.contains('\n'), "{}", item.message);
        assert!(!item.message.ends_with('.'), "{}", item.message);
        assert!(!item.message.is_empty());
        assert!(!item.help.as_deref().is_some_and(|h| h.contains('\n')));
        let gutter = " ".repeat(line.to_string().len());
        let at = format!(
            "error: {}\n{gutter}--> bad.vgg:{line}:{col}\n",
            item.message
        );
        assert!(rendered.contains(&at), "{at:?} in:\n{rendered}");
    }
    // No colour codes unless asked for.
    assert!(!rendered.contains('\x1b'));
    rendered
}

#[test]
fn colour_is_only_added_on_request() {
    let d = vggdsl::load("model A { bm = true }", "bad.vgg").unwrap_err();
    let coloured = d.render(true);
    assert!(coloured.contains("\x1b["));
    let stripped: String = strip_ansi(&coloured);
    assert_eq!(stripped, d.render(false));
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let nets = vggdsl::load("\u{feff}model A { cfg = vgg11 }\n", "bom.vgg").unwrap();
    assert_eq!(nets[0].spec.name, "A");
}
