// Datapath failures, matched on `code` (they cross into CLI and CNI answers).

export class DatapathError extends Error {
  override readonly name = 'DatapathError';
  readonly code: 'SLUICE_BPF_OBJECT_MISSING' | 'SLUICE_BPFFS_MISSING' | 'SLUICE_MAP_FULL' | 'SLUICE_DATAPATH';
  constructor(code: DatapathError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
