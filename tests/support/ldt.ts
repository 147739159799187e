import iconv from 'iconv-lite';

/** LDT 3 lines (`FFFF content`) as a file: each line's length prefix computed in ISO 8859-15, CR LF endings. */
export function ldtFile(lines: readonly string[], charset = 'iso-8859-15'): Buffer {
  return Buffer.concat(
    lines.map((line) => {
      const body = iconv.encode(line.slice(0, 4) + line.slice(5), charset);
      return Buffer.concat([Buffer.from(String(body.length + 5).padStart(3, '0')), body, Buffer.from('\r\n')]);
    }),
  );
}

/** The lines of an LDT file (`FFFF content`), decoded. */
export function ldtLines(file: Buffer, charset = 'iso-8859-15'): string[] {
  return iconv
    .decode(file, charset)
    .split('\r\n')
    .filter(Boolean)
    .map((line) => `${line.slice(3, 7)} ${line.slice(7)}`);
}
