// VERSION: answered locally, with no agent, no netns and no I/O but stdin.
import { CURRENT_VERSION, isSupportedVersion, SUPPORTED_VERSIONS } from './versions.js';

export function versionInfo(config: Record<string, unknown> | undefined): { cniVersion: string; supportedVersions: string[] } {
  const asked = config?.cniVersion;
  return { cniVersion: isSupportedVersion(asked) ? asked : CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
