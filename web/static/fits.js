// A minimal FITS primary-image reader for the cube viewer's channel maps (SODA answers): header cards,
// then big-endian pixels (FITS 4.0 sections 4 and 5). Hand-written because the maps are small and no
// kept browser FITS library is distributed as an ES module; only BITPIX -64/-32/8/16/32 are needed.

export function readFits(buffer) {
  const text = new TextDecoder("ascii");
  const cards = {};
  let offset = 0;
  for (let done = false; !done; offset += 2880) {
    if (offset + 2880 > buffer.byteLength) throw new Error("FITS header without END");
    const block = text.decode(new Uint8Array(buffer, offset, 2880));
    for (let i = 0; i < 2880; i += 80) {
      const card = block.slice(i, i + 80);
      const key = card.slice(0, 8).trim();
      if (key === "END") { done = true; break; }
      if (card[8] === "=") cards[key] = card.slice(10).split("/")[0].trim().replace(/^'|'\s*$/g, "").trim();
    }
  }
  const bitpix = Number(cards.BITPIX);
  const naxis = Number(cards.NAXIS);
  const shape = [];
  for (let i = 1; i <= naxis; i++) shape.push(Number(cards[`NAXIS${i}`]));
  const n = shape.reduce((a, b) => a * b, 1);
  const view = new DataView(buffer, offset);
  const scale = Number(cards.BSCALE || 1), zero = Number(cards.BZERO || 0);
  const data = new Float32Array(n);
  const read = { "-64": (i) => view.getFloat64(i * 8), "-32": (i) => view.getFloat32(i * 4),
    8: (i) => view.getUint8(i), 16: (i) => view.getInt16(i * 2), 32: (i) => view.getInt32(i * 4) }[bitpix];
  if (!read) throw new Error(`BITPIX ${bitpix} not supported`);
  for (let i = 0; i < n; i++) data[i] = read(i) * scale + zero;
  return { cards, shape, data };
}
