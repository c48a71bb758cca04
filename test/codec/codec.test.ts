// The codec without a network: Transaction ⇄ Frame round trips, when zstd is
// used, and the exact DeltafsError code of every malformed frame it refuses.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { MAX_RAW_BYTES, TxCodec } from '../../src/codec/codec.js'
import { type Compressor, loadZstd } from '../../src/codec/zstd.js'
import {
  type Ack, AckBatchCodec, AckCodec, AckStatus, decodeFrameBatch, decodeFrameHeader, DeliveryCodec, encodeAck, encodeAckBatch, encodeDelivery, encodeFrameBatch, type Frame, FrameCodec, type Op, opKind, PayloadCodec, type Transaction, TransactionCodec,
} from '../../src/codec/wire.js'
import { DeltafsError } from '../../src/util/errors.js'

const zstd = await loadZstd()
const codec = new TxCodec(zstd)

/** Every op kind, with every field set, as the decoder returns them. */
const allOps: Op[] = [
  { create: { mode: 0o644 } },
  { write: { offset: 4096, data: Buffer.from('hello, world') } },
  { truncate: { size: 123_456 } },
  { unlink: {} },
  { mkdir: { mode: 0o755 } },
  { rmdir: {} },
  { rename: { to: '/dir/renamed.txt' } },
  { symlink: { target: '../elsewhere/target' } },
  { setAttr: { hasMode: true, mode: 0o600, hasMtime: true, mtimeNs: 1_700_000_000_123_456_789n, hasAtime: false, atimeNs: 0n, hasUid: true, uid: 65534, hasGid: false, gid: 0 } },
  { link: { to: '/hard/link' } },
  { setXattr: { name: 'user.origin', value: Buffer.from('https://example.org/\0binary') } },
  { removeXattr: { name: 'user.stale' } },
  { mknod: { mode: 0o010640 } },
  {
    rebuild: {
      baseVersion: 42,
      pieces: [{ copy: { offset: 0, length: 65_536 } }, { insert: { data: Buffer.from('inserted line\n') } }, { copy: { offset: 70_000, length: 10 } }],
      resultSize: 65_560,
      resultSha256: Buffer.alloc(32, 0xab),
      baseSha256: Buffer.alloc(32, 0xcd),
    },
  },
]

function tx (ops: Op[], over: Partial<Transaction> = {}): Transaction {
  return {
    txId: { deviceId: 'd0123456789abcdef', deviceSeq: 7 },
    volume: 'docs',
    fileId: 'f-1',
    baseVersion: 3,
    path: '/dir/file.txt',
    ops,
    mtimeNs: 1_700_000_000_987_654_321n,
    sourceFileId: 'f-0',
    sourceBaseVersion: 2,
    part: 2,
    moreParts: true,
    alsoAt: [],
    alsoBase: 0,
    ...over,
  }
}

/** A copy of a frame with a changed header, the payload untouched. */
function withHeader (f: Frame, h: Partial<Frame['header']>): Frame {
  return { header: { ...f.header, ...h }, payload: f.payload }
}

/** Runs fn and returns what it threw. */
function thrown (fn: () => unknown): unknown {
  try { fn() } catch (err) { return err }
  return undefined
}

function refuses (t: Test, fn: () => unknown, code: string, message: string): void {
  const err = thrown(fn)
  t.ok(err instanceof DeltafsError && err.code === code, message, {
    found: err instanceof Error ? `${err.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : err,
    wanted: `DeltafsError ${code}`,
  })
}

t.test('every op kind survives seal and open', async t => {
  const original = tx(allOps, { alsoAt: ['/dir/other name.txt', '/second.txt'], alsoBase: 2 ** 33 + 5 })
  t.equal(new Set(allOps.map(opKind)).size, 14, 'the fixture holds 14 distinct op kinds')
  const frame = codec.seal(original)
  t.same(codec.open(frame), original, 'open(seal(tx)) is tx, field by field')
  // Through the protobuf bytes, as a frame travels.
  const wired = FrameCodec.decode(FrameCodec.encode(frame))
  t.same(codec.open(wired), original, 'still equal after the frame is encoded and decoded')
  t.same(codec.open(wired).ops.map(opKind), allOps.map(opKind), 'ops keep their order and kind')
  t.same(wired.header, {
    volume: 'docs', txId: { deviceId: 'd0123456789abcdef', deviceSeq: 7 }, fileId: 'f-1', baseVersion: 3,
    codec: frame.header.codec, encrypted: false, rawSize: TransactionCodec.encode(original).length, sourceFileId: 'f-0', sourceBaseVersion: 2,
    removes: false,
  }, 'the header carries ids, versions (a rename\'s source too), codec and the raw size')
})

t.test('uint64 values past 2^32 keep their value', async t => {
  const big = tx([{ write: { offset: 2 ** 40 + 3, data: Buffer.from('x') } }, { truncate: { size: 2 ** 41 } }],
    { txId: { deviceId: 'dev', deviceSeq: 2 ** 33 + 1 }, baseVersion: 2 ** 35 })
  const back = codec.open(FrameCodec.decode(FrameCodec.encode(codec.seal(big))))
  t.same(back, big, 'offsets, sizes, seqs and versions above 32 bits round-trip')
})

t.test('small payloads stay raw, compressible ones use zstd', async t => {
  const small = tx([{ unlink: {} }], { path: '/a', part: 0, moreParts: false })
  const raw = TransactionCodec.encode(small)
  t.ok(raw.length < 64, `a tiny transaction encodes to under 64 bytes (${raw.length})`)
  const f1 = codec.seal(small)
  t.equal(f1.header.codec, PayloadCodec.NONE, 'tiny: CODEC_NONE')
  t.ok(Buffer.from(f1.payload).equals(Buffer.from(raw)), 'tiny: the payload is the encoded transaction')
  t.equal(f1.header.rawSize, raw.length, 'tiny: rawSize is the payload length')

  const noisy = tx([{ write: { offset: 0, data: randomBytes(4096) } }])
  const f2 = codec.seal(noisy)
  t.equal(f2.header.codec, PayloadCodec.NONE, 'random data: zstd does not pay, CODEC_NONE')
  t.equal(f2.payload.length, TransactionCodec.encode(noisy).length, 'random data: payload is the raw encoding')
  t.same(codec.open(f2), noisy, 'random data round-trips')

  const text = Buffer.from('the same line of text, again and again\n'.repeat(3000))
  const big = tx([{ write: { offset: 0, data: text } }])
  const f3 = codec.seal(big)
  const rawSize = TransactionCodec.encode(big).length
  t.equal(f3.header.codec, PayloadCodec.ZSTD, 'repetitive text: CODEC_ZSTD')
  t.equal(f3.header.rawSize, rawSize, 'rawSize is the uncompressed size')
  t.ok(f3.payload.length * 10 < rawSize, `compressed to under a tenth (${f3.payload.length} of ${rawSize} bytes)`)
  t.same(codec.open(f3), big, 'compressed frame round-trips')
})

t.test('open refuses malformed frames with a stable code', async t => {
  const small = codec.seal(tx([{ mkdir: { mode: 0o755 } }], { path: '/d' }))
  const packed = codec.seal(tx([{ write: { offset: 0, data: Buffer.alloc(20_000, 0x61) } }]))
  t.equal(small.header.codec, PayloadCodec.NONE, 'fixture: a raw frame')
  t.equal(packed.header.codec, PayloadCodec.ZSTD, 'fixture: a zstd frame')

  refuses(t, () => codec.open(withHeader(small, { codec: 7 as PayloadCodec })), 'UNSUPPORTED_CODEC', 'codec number 7')
  refuses(t, () => codec.open(withHeader(small, { codec: PayloadCodec.UNSPECIFIED })), 'UNSUPPORTED_CODEC', 'CODEC_UNSPECIFIED (0)')
  refuses(t, () => codec.open({ payload: small.payload } as unknown as Frame), 'BAD_FRAME', 'no header')
  refuses(t, () => codec.open(FrameCodec.decode(FrameCodec.encode({ payload: small.payload } as unknown as Frame))), 'BAD_FRAME', 'no header, as decoded from the wire')

  refuses(t, () => codec.open(withHeader(small, { rawSize: small.header.rawSize + 1 })), 'BAD_FRAME', 'raw payload shorter than rawSize')
  refuses(t, () => codec.open(withHeader(small, { rawSize: small.header.rawSize - 1 })), 'BAD_FRAME', 'raw payload longer than rawSize')
  refuses(t, () => codec.open(withHeader(packed, { rawSize: packed.header.rawSize - 1 })), 'BAD_FRAME', 'zstd payload expands to more than rawSize')
  refuses(t, () => codec.open(withHeader(packed, { rawSize: packed.header.rawSize + 1 })), 'BAD_FRAME', 'zstd payload expands to less than rawSize')
  refuses(t, () => codec.open(withHeader(packed, { rawSize: MAX_RAW_BYTES + 1 })), 'BAD_FRAME', 'rawSize over MAX_RAW_BYTES (zstd)')
  refuses(t, () => codec.open({ header: { ...small.header, rawSize: MAX_RAW_BYTES + 1 }, payload: Buffer.alloc(0) }), 'BAD_FRAME', 'rawSize over MAX_RAW_BYTES (raw)')

  const junk = Buffer.from('this is not a zstd frame, only text')
  refuses(t, () => codec.open({ header: { ...packed.header, rawSize: 100 }, payload: junk }), 'BAD_FRAME', 'garbage zstd payload')
  refuses(t, () => codec.open({ header: { ...packed.header }, payload: Buffer.from(packed.payload).subarray(0, packed.payload.length - 5) }), 'BAD_FRAME', 'truncated zstd payload')
  // 0x0f: field 1 with wire type 7, which protobuf does not have.
  const badProto = Buffer.from([0x0f, 0x01, 0x02, 0x03])
  refuses(t, () => codec.open({ header: { ...small.header, rawSize: badProto.length }, payload: badProto }), 'BAD_MESSAGE', 'garbage raw payload that is not protobuf')
  const cut = Buffer.from(small.payload).subarray(0, small.payload.length - 3)
  refuses(t, () => codec.open({ header: { ...small.header, rawSize: cut.length }, payload: cut }), 'BAD_MESSAGE', 'truncated raw payload')

  refuses(t, () => codec.open(withHeader(small, { txId: { ...small.header.txId, deviceSeq: small.header.txId.deviceSeq + 1 } })), 'BAD_FRAME', 'header device seq differs from the payload')
  refuses(t, () => codec.open(withHeader(small, { txId: { ...small.header.txId, deviceId: 'dother' } })), 'BAD_FRAME', 'header device id differs from the payload')
  refuses(t, () => codec.open(withHeader(packed, { volume: 'other' })), 'BAD_FRAME', 'header volume differs from the payload')
})

t.test('zstd payloads that lie about their size are refused before they expand', async t => {
  let decompressed = 0
  const spy: Compressor = {
    compress: raw => zstd.compress(raw),
    decompress: (data, rawSize) => { decompressed++; return zstd.decompress(data, rawSize) },
  }
  const guarded = new TxCodec(spy)
  const header = guarded.seal(tx([{ write: { offset: 0, data: Buffer.alloc(20_000) } }])).header
  t.equal(header.codec, PayloadCodec.ZSTD, 'fixture: a zstd header')

  const zeros = zstd.compress(Buffer.alloc(4 << 20))
  t.ok(zeros.length < 1024, `4 MiB of zeros compress to ${zeros.length} bytes`)
  refuses(t, () => guarded.open({ header: { ...header, rawSize: 100 }, payload: zeros }), 'BAD_FRAME', '4 MiB of zeros claiming 100 bytes')

  const inner = TransactionCodec.encode(tx([{ rmdir: {} }]))
  const one = zstd.compress(inner)
  refuses(t, () => guarded.open({ header: { ...header, rawSize: inner.length }, payload: Buffer.concat([one, one]) }), 'BAD_FRAME', 'two concatenated zstd frames')

  // A valid zstd frame whose header omits the content size: magic, frame
  // header descriptor 0 (no size, not single segment), window byte, one last raw block.
  const blockHeader = Buffer.alloc(3)
  blockHeader.writeUIntLE((inner.length << 3) | 1, 0, 3)
  const sizeless = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00]), blockHeader, inner])
  refuses(t, () => guarded.open({ header: { ...header, rawSize: inner.length }, payload: sizeless }), 'BAD_FRAME', 'a zstd frame without a content size')
  t.equal(decompressed, 0, 'none of them reached the decompressor')

  t.same(guarded.open(guarded.seal(tx([{ write: { offset: 0, data: Buffer.alloc(20_000) } }]))).ops.length, 1, 'an honest frame still opens')
  t.equal(decompressed, 1, 'and is decompressed once')
})

t.test('large transactions within MAX_RAW_BYTES', async t => {
  // zstd-codec's emscripten heap aborts with OOM on inputs of about 5.5 MiB;
  // seal() must send such payloads raw instead.
  const big = tx([{ write: { offset: 0, data: Buffer.alloc(6 << 20, 0x61) } }])
  let frame: Frame | undefined
  const err = thrown(() => { frame = codec.seal(big) })
  t.equal(err, undefined, 'seal of a 6 MiB compressible transaction does not throw')
  if (frame) t.equal(codec.open(frame).ops.length, 1, 'and the frame opens')
})

t.test('FrameCodec.decode refuses truncated bytes', async t => {
  const bytes = FrameCodec.encode(codec.seal(tx(allOps)))
  for (const cut of [1, 5, Math.floor(bytes.length / 2)]) {
    refuses(t, () => FrameCodec.decode(bytes.subarray(0, bytes.length - cut)), 'BAD_MESSAGE', `frame bytes missing their last ${cut}`)
  }
  refuses(t, () => FrameCodec.decode(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), 'BAD_MESSAGE', 'a header length far past the end')
  refuses(t, () => TransactionCodec.decode(Buffer.from([0x0f])), 'BAD_MESSAGE', 'TransactionCodec: invalid wire type')
})

t.test('decodeFrameHeader reads the header as FrameCodec.decode does, and refuses the same bytes', async t => {
  const frame = codec.seal(tx(allOps))
  const bytes = FrameCodec.encode(frame)
  t.same(decodeFrameHeader(bytes), FrameCodec.decode(bytes).header, 'same header')
  const payloadFirst = Buffer.concat([FrameCodec.encode({ payload: frame.payload } as unknown as Frame), FrameCodec.encode({ header: frame.header, payload: new Uint8Array(0) })])
  t.same(decodeFrameHeader(payloadFirst), frame.header, 'fields in any order')
  t.equal(decodeFrameHeader(FrameCodec.encode({ payload: frame.payload } as unknown as Frame)), undefined, 'no header: undefined')
  for (const cut of [1, 5, Math.floor(bytes.length / 2)]) {
    refuses(t, () => decodeFrameHeader(bytes.subarray(0, bytes.length - cut)), 'BAD_MESSAGE', `frame bytes missing their last ${cut}`)
  }
  refuses(t, () => decodeFrameHeader(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), 'BAD_MESSAGE', 'a header length far past the end')
  refuses(t, () => decodeFrameHeader(Buffer.from([0x0f])), 'BAD_MESSAGE', 'invalid wire type')
})

t.test('encodeAck decodes to the same Ack as AckCodec.encode', async t => {
  const acks: Ack[] = [
    { txId: { deviceId: 'devA', deviceSeq: 2 ** 40 + 3 }, seq: 2 ** 33, status: AckStatus.OK, error: '' },
    { txId: { deviceId: 'devB', deviceSeq: 7 }, seq: 0, status: AckStatus.DEFERRED, error: 'an earlier transaction was refused' },
    { txId: { deviceId: 'devC', deviceSeq: 9 }, seq: 12, status: AckStatus.CONFLICT, error: 'file changed', winnerDevice: 'devA' },
  ]
  for (const ack of acks) t.same(AckCodec.decode(encodeAck(ack)), AckCodec.decode(AckCodec.encode(ack)), `status ${ack.status}`)
})

t.test('a FrameBatch gives back the exact frame bytes, and refuses cut or malformed input', async t => {
  const frames = [FrameCodec.encode(codec.seal(tx(allOps))), FrameCodec.encode(codec.seal(tx([{ unlink: {} }]))), new Uint8Array(0)]
  const bytes = encodeFrameBatch(frames)
  const back = decodeFrameBatch(bytes)
  t.equal(back.length, 3, 'three frames')
  back.forEach((f, i) => t.ok(Buffer.from(f).equals(Buffer.from(frames[i]!)), `frame ${i + 1}: same bytes`))
  t.equal(back[0]!.buffer, bytes.buffer, 'views of the batch, not copies')
  t.same(decodeFrameBatch(new Uint8Array(0)), [], 'an empty batch has no frames')
  for (const cut of [1, 7, Math.floor(bytes.length / 2)]) {
    refuses(t, () => decodeFrameBatch(bytes.subarray(0, bytes.length - cut)), 'BAD_MESSAGE', `batch bytes missing their last ${cut}`)
  }
  refuses(t, () => decodeFrameBatch(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), 'BAD_MESSAGE', 'a frame length far past the end')
  refuses(t, () => decodeFrameBatch(Buffer.from([0x0f])), 'BAD_MESSAGE', 'invalid wire type')
})

t.test('encodeAckBatch decodes to the same Acks, in order', async t => {
  const acks: Ack[] = [
    { txId: { deviceId: 'devA', deviceSeq: 1 }, seq: 10, status: AckStatus.OK, error: '' },
    { txId: { deviceId: 'devA', deviceSeq: 2 }, seq: 3, status: AckStatus.CONFLICT, error: 'file changed', winnerDevice: 'devB' },
    { txId: { deviceId: 'devA', deviceSeq: 3 }, seq: 0, status: AckStatus.DEFERRED, error: 'later' },
  ]
  t.same(AckBatchCodec.decode(encodeAckBatch(acks)).acks, acks.map(a => AckCodec.decode(encodeAck(a))), 'same acks')
})

t.test('encodeDelivery is a Delivery the codec decodes', async t => {
  const frame = codec.seal(tx(allOps))
  const frameBytes = FrameCodec.encode(frame)
  for (const seq of [1, 300, 2 ** 32 + 17, 2 ** 50]) {
    const d = DeliveryCodec.decode(encodeDelivery(seq, frameBytes))
    t.equal(d.seq, seq, `seq ${seq}`)
    t.same(d.frame.header, frame.header, `seq ${seq}: same header`)
    t.ok(Buffer.from(d.frame.payload).equals(Buffer.from(frame.payload)), `seq ${seq}: same payload bytes`)
  }
  const d = DeliveryCodec.decode(encodeDelivery(9, frameBytes))
  t.same(codec.open(d.frame), tx(allOps), 'the delivered frame opens to the original transaction')
  t.ok(Buffer.from(encodeDelivery(9, frameBytes)).equals(Buffer.from(DeliveryCodec.encode({ seq: 9, frame }))), 'same bytes as encoding a Delivery message')
})

t.test('with a volume key the payload is sealed', async t => {
  const key = randomBytes(32)
  const keyed = new TxCodec(zstd, key)
  const original = tx(allOps)
  const frame = keyed.seal(original)
  t.equal(frame.header.encrypted, true, 'header says encrypted')
  t.notOk(Buffer.from(frame.payload).includes(Buffer.from('/dir/file.txt')), 'the path is not readable in the payload')
  t.same(keyed.open(FrameCodec.decode(FrameCodec.encode(frame))), original, 'round-trips with the key')
  refuses(t, () => new TxCodec(zstd, randomBytes(32)).open(frame), 'KEY', 'a wrong key')
  refuses(t, () => codec.open(frame), 'KEY', 'no key for an encrypted frame')
  refuses(t, () => keyed.open(codec.seal(original)), 'KEY', 'an unencrypted frame on a keyed mount')
  refuses(t, () => keyed.open(withHeader(frame, { txId: { ...frame.header.txId, deviceSeq: 8 } })), 'KEY', 'a payload moved to another transaction id')
  refuses(t, () => keyed.open({ header: frame.header, payload: Buffer.alloc(10) }), 'BAD_FRAME', 'an encrypted payload shorter than nonce + tag')
})

t.test('each loadZstd() keeps its own level', async t => {
  const text = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i % 97}: the quick brown fox ${i % 13} jumps\n`).join(''))
  const fast = (await loadZstd(1)).compress(text)
  const strong = (await loadZstd(19)).compress(text)
  t.ok(strong.length < fast.length, `level 19 (${strong.length} B) is smaller than level 1 (${fast.length} B), whichever was loaded first`)
  t.same(Buffer.from((await loadZstd(19)).decompress(strong, text.length)), text, 'and both are standard frames')
})

t.test('sealBytes: a large incompressible transaction is encoded straight into its frame', async t => {
  const noisy = tx([{ create: { mode: 0o644 } }, { write: { offset: 0, data: randomBytes(256 << 10) } }, { write: { offset: 1 << 20, data: Buffer.from('tail') } }])
  const bytes = codec.sealBytes(noisy)
  const raw = TransactionCodec.encode(noisy)
  const frame = FrameCodec.decode(bytes)
  t.equal(frame.header.codec, PayloadCodec.NONE, 'CODEC_NONE')
  t.equal(frame.header.rawSize, raw.length, 'rawSize is the encoded transaction\'s size')
  t.ok(Buffer.from(frame.payload).equals(Buffer.from(raw)), 'the payload is the transaction\'s own encoding')
  t.same(decodeFrameHeader(bytes), frame.header, 'the storage node reads the same header (it follows the payload)')
  t.same(codec.open(frame), noisy, 'the frame opens to the transaction')
  t.same(FrameCodec.decode(FrameCodec.encode(codec.seal(noisy))), frame, 'the same frame as seal() gives')
  t.equal(bytes.length, FrameCodec.encode(codec.seal(noisy)).length, 'and the same number of bytes')
})

t.test('sealBytes: everything else is seal() encoded', async t => {
  const text = Buffer.from('the same line of text, again and again\n'.repeat(3000))
  const cases: Array<[string, Transaction]> = [
    ['every op kind, small', tx(allOps)],
    ['tiny', tx([{ unlink: {} }], { path: '/a' })],
    ['large and compressible', tx([{ write: { offset: 0, data: text } }])],
    ['random but under the sampling size', tx([{ write: { offset: 0, data: randomBytes(4096) } }])],
  ]
  for (const [what, one] of cases) {
    const frame = FrameCodec.decode(codec.sealBytes(one))
    t.same(frame, FrameCodec.decode(FrameCodec.encode(codec.seal(one))), `${what}: the frame seal() gives (codec ${frame.header.codec})`)
    t.same(codec.open(frame), one, `${what}: opens to the transaction`)
  }
  t.equal(FrameCodec.decode(codec.sealBytes(cases[2]![1])).header.codec, PayloadCodec.ZSTD, 'compressible data is still compressed')

  const keyed = new TxCodec(zstd, randomBytes(32))
  const secretData = randomBytes(256 << 10)
  const secret = tx([{ write: { offset: 0, data: secretData } }])
  const sealed = FrameCodec.decode(keyed.sealBytes(secret))
  t.equal(sealed.header.encrypted, true, 'with a volume key the frame is encrypted')
  t.notOk(Buffer.from(sealed.payload).includes(secretData.subarray(1000, 1064)), 'no plain data in the payload')
  t.same(keyed.open(sealed), secret, 'and opens with the key')
})

t.test('the header says when a checked transaction deletes its file', async t => {
  const removes = (ops: Op[], over: Partial<Transaction> = {}): boolean | undefined => FrameCodec.decode(FrameCodec.encode(codec.seal(tx(ops, over)))).header.removes
  t.equal(removes([{ unlink: {} }]), true, 'an unlink')
  t.equal(removes([{ write: { offset: 0, data: Buffer.from('x') } }, { unlink: {} }]), true, 'writes, then the unlink')
  t.equal(removes([{ unlink: {} }, { create: { mode: 0o644 } }]), false, 'an unlink, then a new file there')
  t.equal(removes([{ rename: { to: '/other' } }]), false, 'a rename: its target has the file (the source is in source_file_id)')
  t.equal(removes([{ unlink: {} }], { fileId: '' }), false, 'an unchecked transaction says nothing')
})
