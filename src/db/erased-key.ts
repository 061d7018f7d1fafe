/**
 * The `external_id` an erased interaction keeps: `erased:` and the sha256 (hex) of its source, a
 * newline and its original external id, as a SQL expression over the two given expressions.
 *
 * The erasure removes the original (an email's Message-ID can name its sender), but the ingest's
 * dedupe must still know the key: a replay of the topic (a data team re-reading a year of
 * interactions) or a re-sent `/ingest` body stored the erased person's message again, with a new
 * customer and identities, as if it had never been seen. The dedupe looks up both forms of each
 * key in the same index (`interaction_source_external_key`), so a replayed erased message counts as
 * a duplicate and nothing of it is stored. The hash is a pseudonym of a public key, not the key.
 */
export function erasedExternalIdSql(source: string, externalId: string): string {
  return `'erased:' || encode(sha256(convert_to(${source} || E'\\n' || ${externalId}, 'UTF8')), 'hex')`;
}
