//! Images for models that see: figures the code drew and images members
//! attach from the library. A PNG larger than providers take well is scaled
//! down (by averaging the pixels each new pixel covers) before it goes into
//! the conversation; what members see and what the library keeps stay as
//! they were.

use std::io::Cursor;

use base64::Engine;
use cairn_core::ProjectId;
use futures::TryStreamExt;

/// The longest side a model is shown (Anthropic's advice: larger images are
/// scaled down by the provider anyway, after costing their full size).
pub const MAX_SIDE: u32 = 1568;

/// `png` scaled so that its longest side is at most `max_side`, as PNG; the
/// same bytes when it is small enough; `None` when it is not a PNG this can read.
pub fn fit_png(png: &[u8], max_side: u32) -> Option<Vec<u8>> {
    let mut decoder = png::Decoder::new(Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().ok()?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width.max(height) <= max_side {
        return Some(png.to_vec());
    }
    let mut pixels = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut pixels).ok()?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return None, // EXPAND turns palettes into RGB(A)
    };
    let stride = frame.line_size;
    let scale = f64::from(max_side) / f64::from(width.max(height));
    let new_width = ((f64::from(width) * scale).round() as u32).max(1);
    let new_height = ((f64::from(height) * scale).round() as u32).max(1);
    let mut out = Vec::with_capacity((new_width * new_height) as usize * channels);
    for y in 0..new_height {
        let (y0, y1) = (y * height / new_height, ((y + 1) * height / new_height).max(y * height / new_height + 1));
        for x in 0..new_width {
            let (x0, x1) = (x * width / new_width, ((x + 1) * width / new_width).max(x * width / new_width + 1));
            let mut sums = [0u64; 4];
            for sy in y0..y1.min(height) {
                let row = &pixels[sy as usize * stride..];
                for sx in x0..x1.min(width) {
                    let at = sx as usize * channels;
                    for (c, sum) in sums.iter_mut().enumerate().take(channels) {
                        *sum += u64::from(row[at + c]);
                    }
                }
            }
            let count = u64::from((y1.min(height) - y0) * (x1.min(width) - x0)).max(1);
            out.extend(sums.iter().take(channels).map(|sum| (sum / count) as u8));
        }
    }
    let mut encoded = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut encoded, new_width, new_height);
        encoder.set_color(frame.color_type);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(&out).ok()?;
    }
    Some(encoded)
}

/// Images a message may carry to the model.
pub const MAX_ATTACHED_IMAGES: usize = 4;
/// The largest attached image sent (bytes, before base64): the providers'
/// own limit is about 5 MB per image.
pub const MAX_ATTACHED_IMAGE_BYTES: i64 = 3_750_000;
/// The largest PNG read to be scaled down.
const MAX_PNG_BYTES: i64 = 20 << 20;

/// What the model is told of a message's attachments, and the images it
/// is shown: each attached library file is named (type, size, whether it
/// is shown); PNG, JPEG, GIF and WebP images within the limits are loaded,
/// PNGs scaled down when large. A file that cannot be read is said to be so.
pub async fn attachments(
    files: Option<&cairn_files::Files>,
    project: ProjectId,
    paths: &[String],
) -> (String, Vec<cairn_llm::Image>) {
    let mut lines = Vec::new();
    let mut images = Vec::new();
    for path in paths {
        let Some(files) = files else {
            lines.push(format!("- `{path}` (the library cannot be reached here)"));
            continue;
        };
        let download = match files.read_latest(project, path).await {
            Ok(download) => download,
            Err(_) => {
                lines.push(format!("- `{path}` (no longer in the library)"));
                continue;
            }
        };
        let record = download.record.clone();
        let kind = record.content_type.as_str();
        let image = matches!(kind, "image/png" | "image/jpeg" | "image/gif" | "image/webp");
        let limit = if kind == "image/png" { MAX_PNG_BYTES } else { MAX_ATTACHED_IMAGE_BYTES };
        let mut shown = false;
        if image && record.size <= limit && images.len() < MAX_ATTACHED_IMAGES {
            let bytes: Option<Vec<u8>> = download
                .body
                .try_fold(Vec::new(), |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                })
                .await
                .ok();
            let fitted = if kind == "image/png" { bytes.and_then(|b: Vec<u8>| fit_png(&b, MAX_SIDE)) } else { bytes };
            if let Some(bytes) = fitted.filter(|b| b.len() as i64 <= MAX_ATTACHED_IMAGE_BYTES) {
                images.push(cairn_llm::Image {
                    media_type: kind.to_owned(),
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                });
                shown = true;
            }
        }
        let size = if record.size >= 1 << 20 {
            format!("{:.1} MB", record.size as f64 / f64::from(1 << 20))
        } else {
            format!("{} KB", (record.size + 1023) / 1024)
        };
        let shown = match (image, shown) {
            (true, true) => ", shown with this message",
            (true, false) => ", too large or too many to show",
            _ => "",
        };
        lines.push(format!("- `{}` ({kind}, {size}{shown})", record.path));
    }
    let note = format!(
        "\n\n[Attached from the project's library; load_file(path) copies a file into the workspace:\n{}]",
        lines.join("\n")
    );
    (note, images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, width, height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            // Left half black, right half white.
            let data: Vec<u8> = (0..height)
                .flat_map(|_| (0..width).flat_map(move |x| if x < width / 2 { [0u8; 3] } else { [255u8; 3] }))
                .collect();
            writer.write_image_data(&data).unwrap();
        }
        bytes
    }

    fn size(png: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(Cursor::new(png)).read_info().unwrap();
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn large_figures_are_scaled_down_keeping_their_shape_and_small_ones_kept() {
        let large = png_of(3200, 1600);
        let fitted = fit_png(&large, MAX_SIDE).unwrap();
        assert_eq!(size(&fitted), (1568, 784));
        // The picture survives: the left edge dark, the right edge light.
        let mut reader = png::Decoder::new(Cursor::new(&fitted)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        assert_eq!((pixels[0], pixels[1567 * 3]), (0, 255));
        let small = png_of(640, 480);
        assert_eq!(fit_png(&small, MAX_SIDE).unwrap(), small, "a chart-sized figure is left as it is");
        assert_eq!(fit_png(b"not a png", MAX_SIDE), None);
    }
}
