// The deltafs.v1.Sync service as a grpc-js definition, with protobufjs
// (de)serializers. Push frames cross as pre-encoded bytes so that the sender
// encodes once and knows exactly what it put on the wire.
import * as grpc from '@grpc/grpc-js'
import {
  type Ack, AckCodec, AckBatchCodec, type Delivery, DeliveryCodec, type FrameHeader, decodeFrameBatch, decodeFrameHeader, encodeAck, encodeAckBatch, encodeFrameBatch, type MessageCodec,
  type SubscribeRequest, SubscribeRequestCodec, type VolumeInfo, VolumeInfoCodec,
  type VolumeInfoRequest, VolumeInfoRequestCodec,
  type HelloRequest, HelloRequestCodec, type HelloReply, HelloReplyCodec,
} from '../codec/wire.js'
import { MAX_FRAME_BYTES } from '../codec/codec.js'
import { DeltafsError } from '../util/errors.js'

/**
 * A frame as the node receives it: its decoded header (the payload is left
 * as bytes), plus the exact bytes to store.
 * Undecodable bytes arrive with `error` set instead of failing the stream, so
 * the node can log them and refuse just that frame.
 */
export interface ReceivedFrame { header?: FrameHeader; bytes: Buffer; error?: string }

function receiveFrame (bytes: Buffer): ReceivedFrame {
  try {
    const header = decodeFrameHeader(bytes)
    return header === undefined ? { bytes } : { header, bytes }
  } catch (err) {
    return { bytes, error: (err as Error).message }
  }
}

/** The frames of a FrameBatch; an undecodable batch is one frame with `error` set. */
function receiveBatch (bytes: Buffer): ReceivedFrame[] {
  let frames: Buffer[]
  try {
    frames = decodeFrameBatch(bytes)
  } catch (err) {
    return [{ bytes, error: (err as Error).message }]
  }
  return frames.map(receiveFrame)
}

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

function ser<T> (codec: MessageCodec<T>) {
  return (value: T): Buffer => Buffer.from(codec.encode(value))
}
function de<T> (codec: MessageCodec<T>) {
  return (bytes: Buffer): T => codec.decode(bytes)
}

export const SyncService = {
  hello: {
    path: '/deltafs.v1.Sync/Hello',
    requestStream: false,
    responseStream: false,
    requestSerialize: ser<HelloRequest>(HelloRequestCodec),
    requestDeserialize: de<HelloRequest>(HelloRequestCodec),
    responseSerialize: ser<HelloReply>(HelloReplyCodec),
    responseDeserialize: de<HelloReply>(HelloReplyCodec),
  },
  push: {
    path: '/deltafs.v1.Sync/Push',
    requestStream: true,
    responseStream: true,
    requestSerialize: asBuffer,
    requestDeserialize: receiveFrame,
    responseSerialize: (ack: Ack): Buffer => asBuffer(encodeAck(ack)),
    responseDeserialize: de<Ack>(AckCodec),
  },
  pushBatch: {
    path: '/deltafs.v1.Sync/PushBatch',
    requestStream: true,
    responseStream: true,
    requestSerialize: (frames: Uint8Array[]): Buffer => asBuffer(encodeFrameBatch(frames)),
    requestDeserialize: receiveBatch,
    responseSerialize: (acks: Ack[]): Buffer => asBuffer(encodeAckBatch(acks)),
    responseDeserialize: (bytes: Buffer): Ack[] => AckBatchCodec.decode(bytes).acks,
  },
  subscribe: {
    path: '/deltafs.v1.Sync/Subscribe',
    requestStream: false,
    responseStream: true,
    requestSerialize: ser<SubscribeRequest>(SubscribeRequestCodec),
    requestDeserialize: de<SubscribeRequest>(SubscribeRequestCodec),
    // The node stores Delivery-ready frame bytes; see storage-node/sync-server.ts.
    responseSerialize: asBuffer,
    responseDeserialize: de<Delivery>(DeliveryCodec),
  },
  info: {
    path: '/deltafs.v1.Sync/Info',
    requestStream: false,
    responseStream: false,
    requestSerialize: ser<VolumeInfoRequest>(VolumeInfoRequestCodec),
    requestDeserialize: de<VolumeInfoRequest>(VolumeInfoRequestCodec),
    responseSerialize: ser<VolumeInfo>(VolumeInfoCodec),
    responseDeserialize: de<VolumeInfo>(VolumeInfoCodec),
  },
} satisfies grpc.ServiceDefinition

/** Metadata keys: the bearer token, and the volume a Push stream writes to. */
export const AUTH_HEADER = 'authorization'
export const VOLUME_HEADER = 'x-deltafs-volume'

export const channelOptions: grpc.ChannelOptions = {
  // Subscribe carries megabytes per delivery: a 64 KiB HTTP/2 window would
  // need a window update every 64 KiB.
  'grpc-node.flow_control_window': 8 << 20,
  'grpc.max_receive_message_length': MAX_FRAME_BYTES + 1024,
  'grpc.max_send_message_length': MAX_FRAME_BYTES + 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
}

/**
 * gRPC drops messages over its limit before any handler sees them (and so
 * unlogged); the limit sits above the node's own frame limit so that frames
 * slightly too large are refused, with a log line, by the node itself.
 */
export function serverOptions (maxFrameBytes: number): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': maxFrameBytes + (8 << 20),
    'grpc.max_send_message_length': MAX_FRAME_BYTES + 1024,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  }
}

export function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]'
}

export function parseHostPort (value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value)
  const port = m ? Number(m[2]) : NaN
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new DeltafsError('BAD_ARGUMENT', `"${value}" is not HOST:PORT (for example 127.0.0.1:7070)`)
  }
  return { host: m[1]!, port }
}
