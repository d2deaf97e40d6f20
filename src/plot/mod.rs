//! The pictures of `vggdsl plot`: each figure is drawn once, with plotters on its SVG backend, and
//! rasterised by resvg when a PNG is asked for.
//!
//! plotters' SVG text needs no font (the viewer lays it out; plotters only estimates sizes), so
//! the SVG is the same on every machine. A PNG needs glyphs: resvg draws the SVG's text with the
//! DejaVu Sans font the `dejavu` crate embeds, never a system font, so PNGs are the same
//! everywhere too.

pub mod bench;
pub mod ranks;
pub mod sensitivity;
pub mod study;
pub mod training;
pub mod widths;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

/// What a drawing function returns; plotters' errors (which writing to a string never raises) are
/// reported, never unwrapped.
pub type Drawn = Result<(), Box<dyn Error>>;

/// A figure's drawing area.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The colour-blind-safe palette of Okabe and Ito, in the order series take it, with grey in
/// place of its yellow, which is too faint on white (the benchmark draws eight series).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(86, 180, 233),
    RGBColor(204, 121, 167),
    RGBColor(0, 0, 0),
    RGBColor(136, 136, 136),
];

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The colour of the grid's light lines.
pub const LIGHT: RGBColor = RGBColor(238, 238, 238);

pub const FONT: &str = "sans-serif";
/// Font sizes, in plotters' units (an SVG font-size of size / 1.24 pixels).
pub const TITLE: u32 = 26;
pub const CAPTION: u32 = 20;
pub const LABEL: u32 = 17;
pub const TICK: u32 = 15;

/// The builder of a line-plot panel (`plot bench`, `plot training`): its caption and the margins
/// those panels share; the caller gives the axes.
pub fn line_panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, CAPTION))
        .margin(14)
        .x_label_area_size(60)
        .y_label_area_size(80);
    builder
}

/// How every SVG vggdsl draws begins: `plot` replaces only a picture that begins so (or a PNG
/// with [`PNG_TEXT`]), never one that someone else made.
const SVG_MARK: &str = "<!-- Drawn by vggdsl plot. -->\n";

/// The text chunk (keyword, NUL, text) that marks every PNG vggdsl draws, right after its header.
const PNG_TEXT: &[u8] = b"Software\0vggdsl plot";

/// The PNG signature and its IHDR chunk, which every PNG begins with.
const PNG_HEAD: usize = 8 + 25;

/// Whether `head`, the first bytes of a file, is a picture vggdsl drew.
pub fn drew(head: &[u8]) -> bool {
    head.starts_with(SVG_MARK.as_bytes())
        || head
            .get(PNG_HEAD..)
            .is_some_and(|rest| rest.starts_with(&png_chunk(b"tEXt", PNG_TEXT)))
}

/// How many bytes of a file [`drew`] needs.
pub const MARK_BYTES: usize = PNG_HEAD + 12 + PNG_TEXT.len();

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend(kind);
    chunk.extend(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    chunk.extend(crc.finalize().to_be_bytes());
    chunk
}

/// The SVG text of a `width` × `height` figure that `draw` paints on a white background.
pub fn svg(width: u32, height: u32, draw: impl FnOnce(&Area) -> Drawn) -> Result<String, String> {
    let mut text = String::from(SVG_MARK);
    {
        let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|e: Box<dyn Error>| format!("cannot draw the figure: {e}"))?;
    }
    Ok(text)
}

/// The figure as a PNG: the SVG rasterised at twice its size, its text in DejaVu Sans.
pub fn png(svg: &str) -> Result<Vec<u8>, String> {
    let mut options = resvg::usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_font_data(dejavu::sans::regular().to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| format!("cannot rasterise the figure: {e}"))?;
    let scale = 2.0;
    let size = tree.size().to_int_size().scale_by(scale);
    let mut pixmap = size
        .and_then(|s| resvg::tiny_skia::Pixmap::new(s.width(), s.height()))
        .ok_or("cannot rasterise the figure: it is too large")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let mut png = pixmap
        .encode_png()
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    let mark = png_chunk(b"tEXt", PNG_TEXT);
    png.splice(PNG_HEAD..PNG_HEAD, mark);
    Ok(png)
}

/// `1234567` → `1.2M`: a short count for axis ticks.
pub fn short(n: f64) -> String {
    let (value, unit) = match n.abs() {
        a if a >= 1e9 => (n / 1e9, "G"),
        a if a >= 1e6 => (n / 1e6, "M"),
        a if a >= 1e3 => (n / 1e3, "K"),
        _ => (n, ""),
    };
    let digits = if value.fract() == 0.0 { 0 } else { 1 };
    format!("{value:.digits$}{unit}")
}

/// The x axis of a chart with `n` categories (layers): category `i` spans `i..i + 1` and has a
/// tick in the middle, however many there are ([`category_labels`] names them).
#[derive(Clone, Copy)]
pub struct Categories(pub usize);

impl Ranged for Categories {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (from, to): (i32, i32)) -> i32 {
        let share = value / self.0.max(1) as f64;
        from + (share * f64::from(to - from)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0 as f64
    }
}

/// The chart type every figure draws on: borrowing its area for `'a`, writing to a string
/// borrowed for `'b`.
pub type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

/// The title above a figure, and the area below it.
pub fn titled<'a>(root: &Area<'a>, title: &str) -> Result<Area<'a>, Box<dyn Error>> {
    Ok(root.titled(title, (FONT, TITLE).into_font().style(FontStyle::Bold))?)
}

/// The series' legend, over a white box.
pub fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut Chart<'a, 'b, X, Y>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .label_font((FONT, TICK))
        .draw()?;
    Ok(())
}

/// The x-axis labels of a chart of categories (layers): each name turned to read upwards, ending
/// under its tick, so that the names of a 19-layer network never overlap. plotters' own rotated
/// tick labels are centred on the tick and would cross the axis; the mesh draws the ticks alone.
pub fn category_labels<Y: Ranged>(
    root: &Area,
    chart: &Chart<'_, '_, Categories, Y>,
    names: &[String],
    bottom: Y::ValueType,
) -> Drawn
where
    Y::ValueType: Clone,
{
    let style = (FONT, TICK)
        .into_font()
        .transform(FontTransform::Rotate270)
        .into_text_style(root)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in names.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, bottom.clone()));
        root.draw(&Text::new(name.as_str(), (x, y + 10), style.clone()))?;
    }
    Ok(())
}

/// The height of the label area under a chart whose x labels are `names`, turned as
/// [`category_labels`] turns them, with the axis description below them.
pub fn category_label_area(root: &Area, names: &[String]) -> u32 {
    let font = (FONT, TICK).into_text_style(root);
    let longest = names
        .iter()
        .filter_map(|n| root.estimate_text_size(n, &font).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0);
    longest + 16 + LABEL * 3 / 2
}
