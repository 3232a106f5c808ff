import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Fonts for trust packets, so any script prints: Noto Sans (Latin, Greek, Cyrillic), Noto Sans JP
 * (Japanese, with many symbols such as arrows) and Noto Naskh Arabic, shipped by the npm packages
 * @embedpdf/fonts-latin, @embedpdf/fonts-jp and @embedpdf/fonts-arabic (SIL Open Font License
 * 1.1). Each face is read and parsed once per process, on first use; every PDF embeds only the
 * glyphs it uses (pdfkit subsets each embedded font).
 *
 * Text is split into runs, each in the first face that has its glyphs (Latin first); spaces, digits
 * and punctuation stay in the run they are in.
 */

const require = createRequire(import.meta.url);

/** fontkit as pdfkit itself loads it (its dependency), so the font objects are ones pdfkit accepts. */
const fontkit = createRequire(require.resolve('pdfkit'))('fontkit') as { create(buffer: Uint8Array): FontkitFont };

export interface FontkitFont {
  familyName: string;
  hasGlyphForCodePoint(codePoint: number): boolean;
  layout(text: string, features?: unknown): unknown;
  glyphsForString(text: string): { advanceWidth: number }[];
}

/**
 * Text that needs no OpenType shaping: Latin, Greek and Cyrillic (with general punctuation, symbols and
 * arrows) without combining marks. Set glyph
 * by glyph at its advance width (no kerning or ligatures), which skips fontkit's per-word shaping
 * (most of a PDF's cost) and keeps every letter its own glyph for text extraction.
 */
const NEEDS_SHAPING = /[\u0300-\u036f\u0483-\u0489\u0590-\u1dff\u20d0-\u20ff\u2c00-\uffff]|[\ud800-\udfff]/;

function simpleLayout(font: FontkitFont): FontkitFont {
  const full = font.layout.bind(font);
  const layout = (text: string, features?: unknown) => {
    if (features || NEEDS_SHAPING.test(text)) return full(text, features);
    const glyphs = font.glyphsForString(text);
    const positions = glyphs.map((g) => ({ xAdvance: g.advanceWidth, yAdvance: 0, xOffset: 0, yOffset: 0 }));
    return {
      glyphs,
      positions,
      // Read after pdfkit has scaled the positions, as fontkit's GlyphRun does.
      get advanceWidth() {
        return positions.reduce((sum, p) => sum + p.xAdvance, 0);
      },
    };
  };
  return new Proxy(font, { get: (target, key) => (key === 'layout' ? layout : Reflect.get(target, key, target)) });
}

function fontFile(pkg: string, file: string): string {
  // The packages export only their metadata module (dist/index.*); the fonts sit beside dist/.
  return path.join(path.dirname(require.resolve(pkg)), '..', 'fonts', file);
}

export const FACES = {
  sans: () => fontFile('@embedpdf/fonts-latin', 'NotoSans-Regular.ttf'),
  sansBold: () => fontFile('@embedpdf/fonts-latin', 'NotoSans-Bold.ttf'),
  sansItalic: () => fontFile('@embedpdf/fonts-latin', 'NotoSans-Italic.ttf'),
  jp: () => fontFile('@embedpdf/fonts-jp', 'NotoSansJP-Regular.otf'),
  jpBold: () => fontFile('@embedpdf/fonts-jp', 'NotoSansJP-Bold.otf'),
  arabic: () => fontFile('@embedpdf/fonts-arabic', 'NotoNaskhArabic-Regular.ttf'),
  arabicBold: () => fontFile('@embedpdf/fonts-arabic', 'NotoNaskhArabic-Bold.ttf'),
} as const;
export type Face = keyof typeof FACES;
export type Style = 'regular' | 'bold' | 'italic';

const loaded = new Map<Face, FontkitFont>();

/** The parsed face, read from its package once per process. */
export function face(name: Face): FontkitFont {
  let font = loaded.get(name);
  if (!font) {
    const parsed = fontkit.create(readFileSync(FACES[name]()));
    // The Latin faces take the unshaped path for the text that allows it; Japanese and Arabic are always shaped.
    font = name.startsWith('sans') ? simpleLayout(parsed) : parsed;
    loaded.set(name, font);
  }
  return font;
}

type Script = 'latin' | 'jp' | 'arabic';
const FACE_OF: Record<Script, Record<Style, Face>> = {
  latin: { regular: 'sans', bold: 'sansBold', italic: 'sansItalic' },
  jp: { regular: 'jp', bold: 'jpBold', italic: 'jp' },
  arabic: { regular: 'arabic', bold: 'arabicBold', italic: 'arabic' },
};
const ORDER: Script[] = ['latin', 'jp', 'arabic'];
const scriptCache = new Map<number, Script>();

function scriptOf(cp: number): Script {
  let s = scriptCache.get(cp);
  if (s === undefined) {
    s = ORDER.find((x) => face(FACE_OF[x].regular).hasGlyphForCodePoint(cp)) ?? 'latin';
    scriptCache.set(cp, s);
  }
  return s;
}

/** Neutral characters (spaces, digits, punctuation) stay in the current run when its face has them. */
const NEUTRAL = /[\s\d\p{P}]/u;

/** Text split into runs, each with the face that draws it. ASCII-only text is one Latin run, without any lookup. */
export function fontRuns(text: string, style: Style = 'regular'): { text: string; face: Face }[] {
  if (/^[\x20-\x7e]*$/.test(text)) return [{ text, face: FACE_OF.latin[style] }];
  const runs: { text: string; script: Script }[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const current = runs.at(-1);
    if (current && NEUTRAL.test(ch) && face(FACE_OF[current.script].regular).hasGlyphForCodePoint(cp)) {
      current.text += ch;
      continue;
    }
    const script = cp < 0x7f ? 'latin' : scriptOf(cp);
    if (current && current.script === script) current.text += ch;
    else runs.push({ text: ch, script });
  }
  return runs.map((r) => ({ text: r.text, face: FACE_OF[r.script][style] }));
}

/** Whether the text needs the Japanese or Arabic face (the chart loads only the fonts it needs). */
export function scriptsIn(text: string): Set<Script> {
  const out = new Set<Script>(['latin']);
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0x7f) out.add(scriptOf(cp));
  }
  return out;
}

/** Font files and family names for the chart (resvg): Noto Sans always, the others when the text needs them. */
export function chartFonts(text: string): { files: string[]; families: string } {
  const scripts = scriptsIn(text);
  const files = [FACES.sans(), FACES.sansBold()];
  const families = ["'Noto Sans'"];
  if (scripts.has('jp')) {
    files.push(FACES.jp());
    families.push(`'${face('jp').familyName}'`);
  }
  if (scripts.has('arabic')) {
    files.push(FACES.arabic());
    families.push(`'${face('arabic').familyName}'`);
  }
  return { files, families: families.join(', ') };
}
