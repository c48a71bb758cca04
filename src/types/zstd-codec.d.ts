// Local typings for the parts of zstd-codec that deltafs uses.
declare module 'zstd-codec' {
  interface ZstdSimple {
    compress (data: Uint8Array, level?: number): Uint8Array | null
    decompress (data: Uint8Array): Uint8Array | null
  }
  interface ZstdBinding { Simple: new () => ZstdSimple }
  const zc: { ZstdCodec: { run (cb: (zstd: ZstdBinding) => void): void } }
  export default zc
}
