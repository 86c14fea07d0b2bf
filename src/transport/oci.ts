/**
 * The `oci:DIR[:REF]` and `oci-archive:FILE[:REF]` transports: image layouts in
 * a directory or in a tar archive read in place.
 *
 * @module
 */
import { ArchiveFiles } from "../oci/archive.ts";
import type { Descriptor } from "../oci/documents.ts";
import {
  blobPathInLayout,
  DirFiles,
  findLayoutEntry,
  type LayoutFiles,
  readLayoutFile,
  readLayoutIndex,
  refName,
} from "../oci/layout.ts";
import { NotFoundError } from "../errors.ts";
import { checkDocument, type FetchedDocument, type ImageSource } from "./source.ts";

/** An image source reading an OCI layout. */
export class OciLayoutSource implements ImageSource {
  readonly description: string;
  #tag: string | undefined;

  constructor(readonly files: LayoutFiles, readonly ref: string | undefined) {
    this.description = ref === undefined ? files.description : `${files.description}:${ref}`;
    this.#tag = ref !== undefined && !/^(sha256|sha512):/.test(ref) ? ref : undefined;
  }

  /** Opens `oci:DIR` (`archive` false) or `oci-archive:FILE` (`archive` true). */
  static async open(path: string, ref: string | undefined, archive: boolean): Promise<OciLayoutSource> {
    const files = archive ? await ArchiveFiles.open(path) : new DirFiles(path);
    return new OciLayoutSource(files, ref);
  }

  /** The tag of the chosen entry: the REF when it is a tag, else the entry's own ref name. */
  get tag(): string | undefined {
    return this.#tag;
  }

  async root(): Promise<FetchedDocument> {
    const index = await readLayoutIndex(this.files);
    const entry = findLayoutEntry(index, this.ref, this.files.description);
    this.#tag ??= refName(entry);
    return { bytes: await this.document(entry), digest: entry.digest, mediaType: entry.mediaType };
  }

  async document(desc: Descriptor): Promise<Uint8Array> {
    const path = blobPathInLayout(desc.digest);
    if ((await this.files.size(path)) === undefined) {
      throw new NotFoundError(`${this.files.description}: blob ${desc.digest} is missing`);
    }
    return checkDocument(
      `${this.files.description}: blob ${desc.digest}`,
      await readLayoutFile(this.files, path),
      desc,
    );
  }

  async blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    const path = blobPathInLayout(desc.digest);
    if ((await this.files.size(path)) === undefined) {
      throw new NotFoundError(`${this.files.description}: blob ${desc.digest} is missing`);
    }
    return await this.files.open(path);
  }

  async close(): Promise<void> {
    await this.files.close();
  }
}
