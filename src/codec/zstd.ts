// zstd through zstd-codec (emscripten). Its heap is small, so callers keep
// inputs to a few MiB; transactions are capped well below that.
import zc from 'zstd-codec'
import { DeltafsError } from '../util/errors.js'

export interface Compressor {
  /** Compressed bytes; a standard zstd frame. */
  compress (raw: Uint8Array): Uint8Array
  /** Decompresses and checks that exactly `rawSize` bytes came out. */
  decompress (data: Uint8Array, rawSize: number): Uint8Array
}

type Simple = InstanceType<Parameters<Parameters<typeof zc.ZstdCodec.run>[0]>[0]['Simple']>
// The emscripten module loads once; each Compressor keeps its own level.
let loading: Promise<Simple> | undefined

export async function loadZstd (level = 1): Promise<Compressor> {
  loading ??= new Promise(resolve => { zc.ZstdCodec.run(binding => resolve(new binding.Simple())) })
  const simple = await loading
  return {
    compress (raw) {
      const out = simple.compress(raw, level)
      if (out == null) throw new DeltafsError('BAD_FRAME', 'zstd compression failed')
      return out
    },
    decompress (data, rawSize) {
      let out: Uint8Array | null
      try {
        out = simple.decompress(data)
      } catch (err) {
        throw new DeltafsError('BAD_FRAME', `zstd payload does not decompress: ${String(err)}`, { cause: err })
      }
      if (out == null || out.length !== rawSize) {
        throw new DeltafsError('BAD_FRAME', out == null ? 'zstd payload does not decompress' : `zstd payload expands to ${out.length} bytes, header says ${rawSize}`)
      }
      return out
    },
  }
}
