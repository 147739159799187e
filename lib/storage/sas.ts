import {
  BlobSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import type { StorageClients } from './clients.js';

export interface BlobSasRequest {
  container: string;
  blob: string;
  /** e.g. "cw" (create + write, no read) for uploads, "r" for downloads. */
  permissions: string;
  expiresOn: Date;
}

/**
 * A SAS URL for exactly one blob. With an account key (Azurite) it is signed with the key; with a
 * managed identity (production, shared keys disabled) it is a user delegation SAS.
 */
export async function blobSasUrl(clients: StorageClients, request: BlobSasRequest): Promise<string> {
  const blobClient = clients.blobService.getContainerClient(request.container).getBlobClient(request.blob);
  const startsOn = new Date(Date.now() - 60_000); // clock skew between us and the service
  const values = {
    containerName: request.container,
    blobName: request.blob,
    permissions: BlobSASPermissions.parse(request.permissions),
    startsOn,
    expiresOn: request.expiresOn,
    protocol: blobClient.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
  };
  let query: string;
  if (clients.sharedKey) {
    query = generateBlobSASQueryParameters(
      values,
      new StorageSharedKeyCredential(clients.sharedKey.accountName, clients.sharedKey.accountKey),
    ).toString();
  } else {
    const delegationKey = await clients.blobService.getUserDelegationKey(startsOn, request.expiresOn);
    query = generateBlobSASQueryParameters(values, delegationKey, clients.blobService.accountName).toString();
  }
  return `${blobClient.url}?${query}`;
}
