// Two small canvas charts, enough for the dashboard: a line chart of rates over time and a bar
// chart of counts per window. No dependency; drawn again whenever the data change.
'use strict';

const Charts = (() => {
  const AXIS = '#8a8f98';
  const GRID = '#e3e6ea';

  function human(n) {
    const units = ['', 'k', 'M', 'G', 'T'];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    const digits = i === 0 && (Number.isInteger(n) || Math.abs(n) >= 10) ? 0 : 1;
    return n.toFixed(digits) + units[i];
  }

  function frame(canvas, max) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height;
    const left = 48, bottom = 18, top = 8;
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px sans-serif';
    ctx.fillStyle = AXIS;
    ctx.strokeStyle = GRID;
    for (let i = 0; i <= 4; i++) {
      const y = top + (h - top - bottom) * (1 - i / 4);
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w, y); ctx.stroke();
      ctx.fillText(human(max * i / 4), 2, y + 4);
    }
    return { ctx, x0: left, y0: h - bottom, width: w - left, height: h - top - bottom };
  }

  // series: [{values: [number], color}], all of the same length (oldest first).
  function line(canvas, series) {
    const n = Math.max(2, ...series.map(s => s.values.length));
    const max = Math.max(1, ...series.flatMap(s => s.values));
    const f = frame(canvas, max);
    for (const s of series) {
      f.ctx.strokeStyle = s.color;
      f.ctx.lineWidth = 2;
      f.ctx.beginPath();
      s.values.forEach((v, i) => {
        const x = f.x0 + f.width * (i + n - s.values.length) / (n - 1);
        const y = f.y0 - f.height * v / max;
        if (i === 0) f.ctx.moveTo(x, y); else f.ctx.lineTo(x, y);
      });
      f.ctx.stroke();
    }
    f.ctx.lineWidth = 1;
  }

  // bars: [{label, value, color}], oldest first; labels are drawn when there is room.
  function bars(canvas, bars) {
    const max = Math.max(1, ...bars.map(b => b.value));
    const f = frame(canvas, max);
    const step = Math.min(48, f.width / Math.max(1, bars.length));
    const every = Math.ceil(70 / step);
    bars.forEach((b, i) => {
      const hgt = f.height * b.value / max;
      f.ctx.fillStyle = b.color;
      f.ctx.fillRect(f.x0 + i * step + 1, f.y0 - hgt, Math.max(1, step - 2), hgt);
      if (i % every === 0) {
        f.ctx.fillStyle = AXIS;
        f.ctx.fillText(b.label, f.x0 + i * step, f.y0 + 13);
      }
    });
  }

  return { line, bars, human };
})();
