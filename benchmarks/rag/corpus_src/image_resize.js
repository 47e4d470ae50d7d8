// Resize images in the browser before uploading them.
//
// Phone cameras produce 12-megapixel photos of 4 to 8 MB. Uploading them as they are is slow on
// mobile networks, so this module scales an image down on a canvas until its longer side is at
// most MAX_EDGE pixels and re-encodes it as JPEG. EXIF orientation is honoured by
// createImageBitmap, so portrait photos are not turned sideways.

const MAX_EDGE = 2048;
const JPEG_QUALITY = 0.85;
const SKIP_BELOW_BYTES = 500 * 1024; // small files are uploaded untouched

/**
 * Return a Blob no larger than MAX_EDGE on its longer side, or the original file when it is
 * already small enough or is not a JPEG or PNG (GIFs would lose their animation).
 */
export async function resizeForUpload(file) {
  if (!["image/jpeg", "image/png"].includes(file.type) || file.size < SKIP_BELOW_BYTES) {
    return file;
  }
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_EDGE / Math.max(bitmap.width, bitmap.height));
  if (scale === 1) {
    bitmap.close();
    return file;
  }
  const width = Math.round(bitmap.width * scale);
  const height = Math.round(bitmap.height * scale);
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  // PNGs with transparency would turn black in JPEG: paint a white background first.
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
}

/** Resize several files with at most two running at once, to keep memory use on phones low. */
export async function resizeAll(files, concurrency = 2) {
  const results = new Array(files.length);
  let next = 0;
  async function worker() {
    while (next < files.length) {
      const index = next++;
      results[index] = await resizeForUpload(files[index]);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}
