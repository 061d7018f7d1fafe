// bench:ingest with BENCH_RATE: produces the end-to-end messages at a fixed rate from a process of
// its own, so that neither its CPU nor its event loop is counted as, or competes inside, the
// Earshot process being measured. Told what to send over IPC; produces on "go"; says "done".
import { Kafka, logLevel } from 'kafkajs';
import { producePaced } from '../support/kafka-fixtures';

interface Job {
  brokers: string;
  topic: string;
  perSec: number;
  messages: { key: string; value: string }[];
}

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
