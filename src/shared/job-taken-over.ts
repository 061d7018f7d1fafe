/** Another runner took the job over (this one's lock session ended): its page or chunk rolls back, and the job is not this runner's to mark. */
export class JobTakenOver extends Error {
  constructor(kind: string, jobId: string) {
    super(`${kind} job ${jobId} was taken over by another runner`);
  }
}
