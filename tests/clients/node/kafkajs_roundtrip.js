#!/usr/bin/env node
// kafkajs round trip against a broker: create topic, produce, read back, verify.
//
// Usage: node kafkajs_roundtrip.js --bootstrap HOST:PORT --topic NAME [--count N] [--partitions P]
//
// Creates the topic through the admin client, produces --count records with explicit
// partitions, keys, values, headers and timestamps (the same plan as
// tests/clients/python/roundtrip_common.py), reads every partition back from offset 0
// and checks each record. kafkajs' public consumer only works through consumer groups,
// so reading uses kafkajs' own Cluster / Broker.fetch / Batch (the code its consumer runs
// on) from the pinned kafkajs version, assigning partitions by hand. Prints one summary
// line; exits 0 only when everything matched.
'use strict'

const { parseArgs } = require('node:util')

const CLIENT = 'kafkajs'
const MAX_ERRORS_REPORTED = 20
let phase = 'start'

function fail(msg, code = 1) {
  process.stdout.write(`FAIL ${CLIENT}: ${msg} (phase: ${phase})\n`, () => process.exit(code))
  setTimeout(() => process.exit(code), 1000)
}

function payload(i) {
  const n = i % 101
  const b = Buffer.alloc(n)
  for (let j = 0; j < n; j++) b[j] = (i * 31 + j * 7) % 256
  return b
}

function plan(count, partitions, baseTsMs) {
  const out = []
  for (let i = 0; i < count; i++) {
    const seq6 = String(i).padStart(6, '0')
    const headers = [
      ['seq', Buffer.from(String(i))],
      ['client', Buffer.from(CLIENT)],
      ['bin', Buffer.from([i % 256, 0, 255])],
    ]
    if (i % 10 === 0) headers.push(['empty', Buffer.alloc(0)])
    out.push({
      seq: i,
      partition: i % partitions,
      key: Buffer.from(`${CLIENT}-key-${seq6}`),
      value: Buffer.concat([Buffer.from(`${CLIENT}-value-${seq6}|`), payload(i)]),
      headers,
      timestamp: baseTsMs + i,
    })
  }
  return out
}

function short(b) {
  if (b === null || b === undefined) return String(b)
  const s = JSON.stringify(b.toString('latin1'))
  return s.length <= 48 ? s : `${s.slice(0, 48)}...(${b.length} bytes)`
}

function headersString(hs) {
  return '[' + hs.map(([k, v]) => `${k}=${short(v)}`).join(' ') + ']'
}

class Verifier {
  constructor(expected, partitions) {
    this.expected = expected
    this.partitions = partitions
    this.seen = new Set()
    this.nextOffset = new Map()
    this.lastSeq = new Map()
    for (let p = 0; p < partitions; p++) {
      this.nextOffset.set(p, 0)
      this.lastSeq.set(p, -1)
    }
    this.delivered = new Map()
    this.errors = []
    this.consumed = 0
    this.keyPrefix = `${CLIENT}-key-`
  }

  error(msg) {
    this.errors.push(msg)
  }

  done() {
    return this.seen.size === this.expected.length
  }

  tooManyErrors() {
    return this.errors.length >= MAX_ERRORS_REPORTED
  }

  expectedCount(p) {
    return this.expected.filter(e => e.partition === p).length
  }

  check(partition, m) {
    this.consumed++
    const offset = Number(m.offset)
    const where = `partition ${partition} offset ${offset}`
    const key = m.key
    const keyStr = key ? key.toString('latin1') : ''
    if (!key || !keyStr.startsWith(this.keyPrefix)) {
      return this.error(`${where}: unexpected key ${short(key)}`)
    }
    const seq = Number(keyStr.slice(this.keyPrefix.length))
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.expected.length) {
      return this.error(`${where}: unexpected key ${short(key)}`)
    }
    if (this.seen.has(seq)) return this.error(`${where}: seq ${seq} read twice`)
    this.seen.add(seq)
    const e = this.expected[seq]
    if (!key.equals(e.key)) this.error(`${where}: seq ${seq} key ${short(key)} != ${short(e.key)}`)
    if (partition !== e.partition) {
      this.error(`${where}: seq ${seq} was produced to partition ${e.partition}`)
    }
    if (offset !== this.nextOffset.get(partition)) {
      this.error(
        `${where}: seq ${seq}: expected offset ${this.nextOffset.get(partition)} on partition ` +
          `${partition} (offsets must be contiguous from 0)`
      )
    }
    this.nextOffset.set(partition, offset + 1)
    if (seq <= this.lastSeq.get(partition)) {
      this.error(
        `${where}: seq ${seq} read after seq ${this.lastSeq.get(partition)}: order within the partition broken`
      )
    }
    this.lastSeq.set(partition, seq)
    if (this.delivered.has(seq) && this.delivered.get(seq) !== offset) {
      this.error(`${where}: seq ${seq} was acknowledged at offset ${this.delivered.get(seq)}`)
    }
    if (!m.value || !m.value.equals(e.value)) {
      this.error(`${where}: seq ${seq} value ${short(m.value)} != expected ${short(e.value)}`)
    }
    const got = []
    for (const [k, v] of Object.entries(m.headers || {})) {
      if (Array.isArray(v)) v.forEach(x => got.push([k, x]))
      else got.push([k, v])
    }
    const same =
      got.length === e.headers.length &&
      got.every(
        ([k, v], i) => k === e.headers[i][0] && v !== null && Buffer.isBuffer(v) && v.equals(e.headers[i][1])
      )
    if (!same) {
      this.error(`${where}: seq ${seq} headers ${headersString(got)} != expected ${headersString(e.headers)}`)
    }
    const tsType = m.batchContext ? m.batchContext.timestampType : undefined
    if (tsType !== undefined && tsType !== 0) {
      this.error(`${where}: seq ${seq} timestamp type ${tsType}, expected CreateTime (0)`)
    }
    if (Number(m.timestamp) !== e.timestamp) {
      this.error(`${where}: seq ${seq} timestamp ${m.timestamp} != expected ${e.timestamp}`)
    }
  }

  finish(elapsedS, extra = '') {
    const missing = this.expected.filter(e => !this.seen.has(e.seq))
    if (missing.length) {
      const byP = new Map()
      for (const e of missing) {
        if (!byP.has(e.partition)) byP.set(e.partition, [])
        if (byP.get(e.partition).length < 5) byP.get(e.partition).push(e.seq)
      }
      const parts = [...byP.entries()].sort((a, b) => a[0] - b[0]).map(([p, s]) => `p${p}: seq [${s}]`)
      this.error(
        `${missing.length} of ${this.expected.length} records never read back; ` +
          `first missing per partition: ${parts.join(', ')}`
      )
    }
    const t = elapsedS.toFixed(1)
    if (this.errors.length) {
      const lines = [
        `FAIL ${CLIENT}: ${this.errors.length} problem(s), consumed ${this.consumed} of ` +
          `${this.expected.length} in ${t}s${extra}; first: ${this.errors[0]}`,
        ...this.errors.slice(1, MAX_ERRORS_REPORTED).map(e => `  - ${e}`),
      ]
      process.stdout.write(lines.join('\n') + '\n')
      return 1
    }
    process.stdout.write(
      `OK ${CLIENT}: ${this.expected.length} records over ${this.partitions} partitions produced and ` +
        `read back intact (keys, values, headers, timestamps, per-partition order, offsets) in ${t}s${extra}\n`
    )
    return 0
  }
}

function stderrLogCreator() {
  return ({ namespace, label, log }) => {
    const { message, ...rest } = log
    process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(rest)}\n`)
  }
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      bootstrap: { type: 'string' },
      topic: { type: 'string' },
      count: { type: 'string', default: '1000' },
      partitions: { type: 'string', default: '3' },
      timeout: { type: 'string', default: '60' },
    },
  })
  const count = Number(args.count)
  const partitionsWanted = Number(args.partitions)
  const timeoutS = Number(args.timeout)
  if (!args.bootstrap || !args.topic || !(count >= 1) || !(partitionsWanted >= 1) || !(timeoutS > 5)) {
    process.stderr.write(
      'usage: kafkajs_roundtrip.js --bootstrap HOST:PORT --topic NAME [--count N] [--partitions P]\n'
    )
    process.exit(2)
  }
  const started = Date.now()
  const deadline = started + (timeoutS - 5) * 1000
  setTimeout(() => fail(`overall timeout of ${timeoutS}s exceeded`, 3), timeoutS * 1000)

  let kafkajs, Cluster, Batch, loggers, socketFactory
  try {
    kafkajs = require('kafkajs')
    Cluster = require('kafkajs/src/cluster')
    Batch = require('kafkajs/src/consumer/batch')
    loggers = require('kafkajs/src/loggers')
    socketFactory = require('kafkajs/src/network/socketFactory')
  } catch (e) {
    return fail(`kafkajs is not installed (${e.message}): run scripts/install-test-deps.sh`)
  }
  const version = require('kafkajs/package.json').version
  const common = {
    clientId: 'isthmus-test-kafkajs',
    brokers: [args.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
  }
  const kafka = new kafkajs.Kafka({ ...common, logLevel: kafkajs.logLevel.WARN, logCreator: stderrLogCreator })

  // -- create the topic and wait for leaders
  phase = 'create topic'
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic: args.topic, numPartitions: partitionsWanted, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 10000,
  })

  phase = 'metadata'
  let partitions = []
  let lastMd = null
  while (Date.now() < deadline) {
    const md = await admin.fetchTopicMetadata({ topics: [args.topic] })
    lastMd = md.topics[0]
    const ps = (lastMd && lastMd.partitions) || []
    if (ps.length && ps.every(p => p.leader >= 0 && !p.partitionErrorCode)) {
      partitions = ps.map(p => p.partitionId).sort((a, b) => a - b)
      if (partitions.length === partitionsWanted || !created) break
    }
    await new Promise(r => setTimeout(r, 200))
  }
  if (!partitions.length || partitions.some((p, i) => p !== i)) {
    return fail(`metadata for ${args.topic} never listed partitions 0..n-1 with leaders (last: ${JSON.stringify(lastMd)})`)
  }
  const nPartitions = partitions.length

  // -- produce, in chunks, with explicit partitions and timestamps
  phase = 'produce'
  const baseTs = (Math.floor(Date.now() / 1000) - 60) * 1000
  const expected = plan(count, nPartitions, baseTs)
  const v = new Verifier(expected, nPartitions)
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: false,
    maxInFlightRequests: 1,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  const CHUNK = 100
  for (let start = 0; start < expected.length; start += CHUNK) {
    const chunk = expected.slice(start, start + CHUNK)
    let result
    try {
      result = await producer.send({
        topic: args.topic,
        acks: -1,
        timeout: 15000,
        messages: chunk.map(e => ({
          key: e.key,
          value: e.value,
          partition: e.partition,
          timestamp: String(e.timestamp),
          headers: Object.fromEntries(e.headers),
        })),
      })
    } catch (err) {
      v.error(`produce of seq ${start}..${start + chunk.length - 1} failed: ${err.name}: ${err.message}`)
      await producer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
      return process.exit(v.finish((Date.now() - started) / 1000))
    }
    // One send = one batch per partition; records keep their order inside it.
    for (const r of result) {
      if (r.errorCode) v.error(`produce to partition ${r.partition} answered error code ${r.errorCode}`)
      let offset = Number(r.baseOffset)
      for (const e of chunk) {
        if (e.partition === r.partition) v.delivered.set(e.seq, offset++)
      }
    }
  }
  await producer.disconnect()

  // -- consume from offset 0 with hand-assigned partitions (no group)
  phase = 'consume'
  const cluster = new Cluster({
    logger: loggers.createLogger({ level: loggers.LEVELS.WARN, logCreator: stderrLogCreator }),
    socketFactory: socketFactory(),
    ...common,
    enforceRequestTimeout: true,
    allowAutoTopicCreation: false,
    isolationLevel: 0,
  })
  await cluster.connect()
  await cluster.addTargetTopic(args.topic)
  const leaders = cluster.findLeaderForPartitions(args.topic, partitions)
  while (!v.done() && !v.tooManyErrors() && Date.now() < deadline) {
    let progressed = false
    for (const [nodeId, ps] of Object.entries(leaders)) {
      const broker = await cluster.findBroker({ nodeId })
      let responses
      try {
        ;({ responses } = await broker.fetch({
          replicaId: -1,
          isolationLevel: 0,
          maxWaitTime: 200,
          minBytes: 1,
          maxBytes: 10 * 1024 * 1024,
          topics: [
            {
              topic: args.topic,
              partitions: ps.map(p => ({ partition: p, fetchOffset: String(v.nextOffset.get(p)), maxBytes: 1048576 })),
            },
          ],
        }))
      } catch (err) {
        v.error(`fetch from node ${nodeId} failed: ${err.name}: ${err.message}`)
        continue
      }
      for (const { topicName, partitions: pdata } of responses) {
        for (const pd of pdata) {
          const fetched = v.nextOffset.get(pd.partition)
          const batch = new Batch(topicName, String(fetched), pd)
          for (const m of batch.messages) {
            v.check(pd.partition, m)
            progressed = true
          }
          if (batch.messages.length === 0 && batch.messagesWithinOffset.length > 0) {
            // Only control records or filtered ones: step past them.
            v.nextOffset.set(pd.partition, Number(batch.lastOffset()) + 1)
            progressed = true
          }
        }
      }
    }
    if (!progressed) await new Promise(r => setTimeout(r, 50))
  }
  await cluster.disconnect()

  phase = 'end offsets'
  if (v.done()) {
    const offsets = await admin.fetchTopicOffsets(args.topic)
    const ends = new Map(offsets.map(o => [o.partition, Number(o.high)]))
    for (let p = 0; p < nPartitions; p++) {
      const want = v.expectedCount(p)
      if (ends.get(p) !== want) {
        v.error(`partition ${p}: high watermark ${ends.get(p)}, expected ${want} (records produced to it)`)
      }
    }
  }
  await admin.disconnect()
  const code = v.finish((Date.now() - started) / 1000, ` (kafkajs ${version})`)
  process.exit(code)
}

main().catch(err => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`)
  fail(`unexpected ${err && err.name}: ${err && err.message}`)
})
