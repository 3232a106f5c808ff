import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deflateSync } from 'node:zlib';

/**
 * The two icons of the Teams app package, drawn by code: no image file comes from elsewhere.
 *
 *   npx tsx scripts/teams-icons.ts        # rewrites manifests/teams/color.png and outline.png
 *
 * - color.png, 192×192: the brand colour (the manifest's accentColor) edge to edge, a white shield with a
 *   check mark cut out of it, inside Teams' 120×120 safe area. Anti-aliased, fully opaque.
 * - outline.png, 32×32: the same shield as a white outline on a transparent background. Teams requires
 *   the outline icon to use only white and transparency, so it is drawn without anti-aliasing: every
 *   pixel is exactly (255,255,255,255) or (0,0,0,0).
 *
 * The PNGs are written by the small encoder below (8-bit RGBA, no interlacing, filter 0 on every row,
 * zlib from node:zlib, CRC-32 computed here). test/teams-manifest.test.ts decodes the committed files and
 * compares their pixels with what these functions draw, so change the drawing and the files together.
 */

/** The brand colour: the colour icon's background and the manifest's accentColor. */
export const BRAND_COLOR = '#1f3b73';

export interface RgbaImage {
  width: number;
  height: number;
  /** width × height × 4 bytes: R, G, B, A per pixel, rows top to bottom. */
  data: Uint8Array;
}

export const ICON_DIR = fileURLToPath(new URL('../manifests/teams/', import.meta.url));
export const ICON_SPECS = {
  color: { file: 'color.png', size: 192 },
  outline: { file: 'outline.png', size: 32 },
} as const;

// ---------------------------------------------------------------------------------------------------
// PNG encoding

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (ISO-HDLC, the one PNG and zip use). Implemented here rather than with zlib.crc32, which
 * arrived in Node 20.15 while package.json allows any Node 20.
 */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  // The CRC covers the chunk type and its data, not the length.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** IHDR colour type 6: truecolour with alpha. */
export const PNG_COLOR_TYPE_RGBA = 6;

/** Encodes an RGBA image as a PNG: IHDR (8-bit RGBA), one IDAT, IEND. */
export function encodePng(image: RgbaImage): Buffer {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`bad image size ${width}×${height}`);
  if (data.length !== width * height * 4) throw new Error(`expected ${width * height * 4} bytes of RGBA, got ${data.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = PNG_COLOR_TYPE_RGBA;
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlacing
  // Each scanline is preceded by its filter type; 0 (None) keeps the encoder trivial, and deflate
  // still squeezes the large flat areas of an icon well.
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/** Width, height and colour type from a PNG's IHDR; throws when the bytes are not a PNG. */
export function readPngHeader(png: Uint8Array): { width: number; height: number; bitDepth: number; colorType: number } {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 33 || !buf.subarray(0, 8).equals(PNG_SIGNATURE) || buf.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG file');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), bitDepth: buf[24]!, colorType: buf[25]! };
}

// ---------------------------------------------------------------------------------------------------
// Drawing

function hexToRgb(hex: string): [number, number, number] {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

interface ShieldBox {
  /** Horizontal centre, half width, top and height, in pixels. */
  cx: number;
  halfWidth: number;
  top: number;
  height: number;
}

/**
 * The shield: straight sides for the upper 45 %, then a parabola on each side meeting in a point at
 * the bottom. (x, y) in pixels, y downwards.
 */
function inShield(x: number, y: number, box: ShieldBox): boolean {
  const v = (y - box.top) / box.height;
  if (v < 0 || v > 1) return false;
  const u = Math.abs(x - box.cx) / box.halfWidth;
  const t = v <= 0.45 ? 0 : (v - 0.45) / 0.55;
  return u <= 1 - t * t;
}

/** Distance from (x, y) to the segment a–b. */
function segmentDistance(x: number, y: number, a: readonly [number, number], b: readonly [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const t = Math.max(0, Math.min(1, ((x - a[0]) * dx + (y - a[1]) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - (a[0] + t * dx), y - (a[1] + t * dy));
}

/** A check mark: two strokes a–b–c with round caps, of the given half width. */
function inCheck(x: number, y: number, points: readonly (readonly [number, number])[], halfWidth: number): boolean {
  const [a, b, c] = points as [readonly [number, number], readonly [number, number], readonly [number, number]];
  return segmentDistance(x, y, a, b) <= halfWidth || segmentDistance(x, y, b, c) <= halfWidth;
}

/** 192×192: brand background, white shield, check mark in the brand colour. 4×4 supersampling. */
export function drawColorIcon(size: number = ICON_SPECS.color.size): RgbaImage {
  const s = size / 192;
  // The shield fits Teams' 120×120 safe area in the middle of the 192×192 icon.
  const box: ShieldBox = { cx: 96 * s, halfWidth: 50 * s, top: 36 * s, height: 120 * s };
  const check = [
    [73 * s, 92 * s],
    [90 * s, 109 * s],
    [121 * s, 76 * s],
  ] as const;
  const checkHalfWidth = 8 * s;
  const [br, bg, bb] = hexToRgb(BRAND_COLOR);
  const data = new Uint8Array(size * size * 4);
  const n = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let white = 0;
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < n; i++) {
          const sx = x + (i + 0.5) / n;
          const sy = y + (j + 0.5) / n;
          if (inShield(sx, sy, box) && !inCheck(sx, sy, check, checkHalfWidth)) white++;
        }
      }
      const f = white / (n * n);
      const o = (y * size + x) * 4;
      data[o] = Math.round(br + (255 - br) * f);
      data[o + 1] = Math.round(bg + (255 - bg) * f);
      data[o + 2] = Math.round(bb + (255 - bb) * f);
      data[o + 3] = 255;
    }
  }
  return { width: size, height: size, data };
}

/**
 * 32×32: the shield as a white outline with a white check mark, on transparency. One sample per pixel
 * (its centre), so every pixel is exactly opaque white or fully transparent, as Teams requires.
 */
export function drawOutlineIcon(): RgbaImage {
  const size = ICON_SPECS.outline.size;
  const outer: ShieldBox = { cx: 16, halfWidth: 13, top: 1, height: 30 };
  const stroke = 2.5;
  const inner: ShieldBox = { cx: 16, halfWidth: outer.halfWidth - stroke, top: outer.top + stroke, height: outer.height - 2.2 * stroke };
  const check = [
    [11, 14.5],
    [14.5, 18],
    [21, 11.5],
  ] as const;
  const data = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const on = (inShield(px, py, outer) && !inShield(px, py, inner)) || inCheck(px, py, check, 1.25);
      if (on) data.fill(255, (y * size + x) * 4, (y * size + x) * 4 + 4);
    }
  }
  return { width: size, height: size, data };
}

/** Draws and encodes both icons: file name → PNG bytes. */
export function renderIcons(): Record<string, Buffer> {
  return {
    [ICON_SPECS.color.file]: encodePng(drawColorIcon()),
    [ICON_SPECS.outline.file]: encodePng(drawOutlineIcon()),
  };
}

export function writeIcons(dir: string = ICON_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(renderIcons()).map(([file, png]) => {
    const path = join(dir, file);
    writeFileSync(path, png);
    return path;
  });
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  for (const path of writeIcons()) process.stdout.write(`wrote ${path}\n`);
}
