// A small hand-written SVG of time series, stacked panels sharing one time axis: no library, no
// network, readable in any browser or on GitHub.

export interface Series {
  name: string;
  color: string;
  /** [seconds, value] */
  points: [number, number][];
}

export interface Panel {
  title: string;
  series: Series[];
}

const WIDTH = 760;
const PANEL_HEIGHT = 150;
const LEFT = 60;
const RIGHT = 20;
const TOP = 36;
const GAP = 46;

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round step for about `count` ticks up to `max`. */
function tickStep(max: number, count: number): number {
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
}

const label = (n: number) => (n >= 10_000 ? `${n / 1000}k` : Number.isInteger(n) ? String(n) : n.toFixed(1));

/** Renders `panels` over [0, xMax] seconds; `markers` are vertical lines (e.g. the receiver coming back). */
export function plotSvg(title: string, panels: Panel[], xMax: number, markers: { at: number; text: string }[] = []): string {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const height = TOP + panels.length * (PANEL_HEIGHT + GAP);
  const x = (s: number) => LEFT + (s / xMax) * plotWidth;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="18" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  const xStep = tickStep(xMax, 8);
  panels.forEach((panel, i) => {
    const top = TOP + i * (PANEL_HEIGHT + GAP) + 14;
    const bottom = top + PANEL_HEIGHT - 14;
    const yMaxRaw = Math.max(1e-9, ...panel.series.flatMap((s) => s.points.map(([, v]) => v)));
    const yStep = tickStep(yMaxRaw, 4);
    const yMax = Math.ceil(yMaxRaw / yStep) * yStep;
    const y = (v: number) => bottom - (v / yMax) * (bottom - top);
    out.push(`<text x="${LEFT}" y="${top - 6}" font-weight="bold">${escapeXml(panel.title)}</text>`);
    for (let v = 0; v <= yMax + 1e-9; v += yStep) {
      out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e4e4e4"/>`);
      out.push(`<text x="${LEFT - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${label(v)}</text>`);
    }
    for (let s = 0; s <= xMax + 1e-9; s += xStep) {
      out.push(`<text x="${x(s).toFixed(1)}" y="${bottom + 14}" text-anchor="middle" fill="#555">${label(s)} s</text>`);
    }
    for (const m of markers) {
      out.push(
        `<line x1="${x(m.at).toFixed(1)}" x2="${x(m.at).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#888" stroke-dasharray="4 3"/>`,
      );
      if (i === 0) out.push(`<text x="${(x(m.at) + 4).toFixed(1)}" y="${top + 10}" fill="#555">${escapeXml(m.text)}</text>`);
    }
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${bottom}" y2="${bottom}" stroke="#888"/>`);
    panel.series.forEach((series, n) => {
      const points = series.points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${series.color}" stroke-width="1.6" points="${points}"/>`);
      if (series.points.length <= 20) {
        for (const [s, v] of series.points)
          out.push(`<circle cx="${x(s).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${series.color}"/>`);
      }
      const legendX = WIDTH - RIGHT - 230;
      out.push(
        `<line x1="${legendX}" x2="${legendX + 16}" y1="${top - 10 + n * 13}" y2="${top - 10 + n * 13}" stroke="${series.color}" stroke-width="2"/>`,
      );
      out.push(`<text x="${legendX + 20}" y="${top - 6 + n * 13}">${escapeXml(series.name)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
