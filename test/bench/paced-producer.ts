// bench:ingest with BENCH_RATE: produces the end-to-end messages at a fixed rate from a process of
// its own, so that neither its CPU nor its event loop is counted as, or competes inside, the
// Earshot process being measured. Told what to send over IPC; produces on "go"; says "done".
import { setTimeout as until } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { orderedProducer, type Outgoing } from '../support/kafka-fixtures';

interface Job {
  brokers: string;
  topic: string;
  perSec: number;
  messages: { key: string; value: string }[];
}

/**
 * Produces `messages` in order at `perSec` a second, acknowledged by all in-sync replicas: what is
 * due by the clock is sent, then the producer waits until the next message is due (a send that
 * took longer is caught up by the next one).
 */
async function producePaced(kafka: Kafka, topic: string, messages: Outgoing[], perSec: number): Promise<void> {
  const producer = orderedProducer(kafka);
  await producer.connect();
  const started = performance.now();
  let sent = 0;
  try {
    while (sent < messages.length) {
      const due = Math.min(messages.length, Math.floor(((performance.now() - started) / 1000) * perSec));
      if (due > sent) {
        await producer.send({ topic, acks: -1, messages: messages.slice(sent, due) });
        sent = due;
      } else await until(Math.max(1, started + ((sent + 1) / perSec) * 1000 - performance.now()));
    }
  } finally {
    await producer.disconnect();
  }
}

// the bench went away (it failed, or was stopped): nothing is left to produce for
process.once('disconnect', () => process.exit(1));

process.once('message', (job: Job) => {
  const kafka = new Kafka({ clientId: 'earshot-bench-paced', brokers: job.brokers.split(','), logLevel: logLevel.NOTHING });
  process.once('message', () => {
    producePaced(kafka, job.topic, job.messages, job.perSec)
      .then(() => process.send!('done', () => process.exit(0)))
      .catch((e: unknown) => {
        console.error('paced producer failed:', e);
        process.exit(1);
      });
  });
  process.send!('ready');
});
