import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { Field, Select, Submit } from '../../ui/form';
import { Loading, Paged, when } from '../../ui/table';
import { Confirm, Refusal, useOrgPage, useProjects } from './common';

type FileList = paths['/api/orgs/{orgId}/projects/{projectId}/files']['get']['responses'][200]['content']['application/json'];
type StoredFile = FileList['files'][number];

const filesKey = (orgId: string, projectId: string) => ['files', orgId, projectId];

function bytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/**
 * A project's files: upload (each is scanned and checked by the server before it is kept),
 * download (always as an attachment) and delete, with the plan's limits and the org's usage.
 */
export function Files() {
  const { orgId, org } = useOrgPage();
  const projects = useProjects(orgId, org);
  const [chosen, setChosen] = useState('');
  const projectId = chosen || projects.data?.projects[0]?.id || '';
  const list = useQuery({
    queryKey: filesKey(orgId, projectId), enabled: projectId !== '',
    queryFn: () => call(api.GET('/api/orgs/{orgId}/projects/{projectId}/files', { params: { path: { orgId, projectId } } })),
  });
  return (
    <>
      <p className="hint">
        Every upload is checked before it is kept: its size against the plan, its name, that its content is what its name says,
        what a zip holds, and a malware scan. A file that fails any check is not kept.
      </p>
      {projects.isPending ? <Loading what="projects" /> : null}
      <Refusal error={projects.error} />
      {projects.data && projects.data.projects.length > 0 ? (
        <Select label="Project" value={projectId} onChange={(e) => setChosen(e.target.value)}>
          {projects.data.projects.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
        </Select>
      ) : null}
      {projects.data?.projects.length === 0 ? <p>No project yet: files belong to a project.</p> : null}
      {projectId && can(org, 'POST /api/orgs/{orgId}/projects/{projectId}/files') ? <Upload orgId={orgId} projectId={projectId} /> : null}
      {projectId && list.data && can(org, 'PUT /api/orgs/{orgId}/projects/{projectId}/file-types') ? (
        <FileTypes key={projectId} orgId={orgId} projectId={projectId} current={list.data.limits.extensions} />
      ) : null}
      {list.isPending && projectId ? <Loading what="files" /> : null}
      <Refusal error={list.error} />
      {list.data ? (
        <>
          <p aria-label="Storage">
            {bytes(list.data.limits.usedBytes)} used of {bytes(list.data.limits.quotaBytes)} ({list.data.limits.plan} plan); files up to {bytes(list.data.limits.fileBytes)} each
            {list.data.limits.extensions ? `; this project accepts ${list.data.limits.extensions.map((e) => `.${e}`).join(', ')}` : ''}.
          </p>
          <Paged label="Files" items={list.data.files} empty="No files in this project." render={(f) => <FileRow key={f.id} orgId={orgId} org={org} f={f} />} />
        </>
      ) : null}
    </>
  );
}

/** The project's allowlist of extensions; executable and script types are refused by the server whatever the list says. */
function FileTypes({ orgId, projectId, current }: { orgId: string; projectId: string; current: string[] | null }) {
  const [text, setText] = useState((current ?? []).join(', '));
  const save = useAction(
    (extensions: string[] | null) => call(api.PUT('/api/orgs/{orgId}/projects/{projectId}/file-types', { params: { path: { orgId, projectId } }, body: { extensions } })),
    { invalidate: [filesKey(orgId, projectId)] },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const list = text.split(/[\s,]+/).map((x) => x.replace(/^\./, '')).filter(Boolean);
    save.mutate(list.length > 0 ? list : null);
  };
  return (
    <form onSubmit={submit} aria-label="Accepted file types">
      <Field
        label="Accepted file types" value={text} onChange={(e) => setText(e.target.value)} placeholder="any type (pdf, csv, png…)"
        field="body.extensions" error={save.error} hint="Extensions separated by commas; empty: any type that is not a program or a script."
      />
      <Refusal error={save.error} />
      {save.isSuccess ? <p role="status">{save.data.extensions ? `This project accepts ${save.data.extensions.map((x) => `.${x}`).join(', ')}.` : 'This project accepts any type that is not a program or a script.'}</p> : null}
      <Submit busy={save.isPending}>Save file types</Submit>
    </form>
  );
}

function Upload({ orgId, projectId }: { orgId: string; projectId: string }) {
  const [file, setFile] = useState<File | null>(null);
  const [round, setRound] = useState(0);
  const send = useAction(
    (f: File) => {
      const form = new FormData();
      form.append('file', f, f.name);
      // The typed client serializes JSON; a multipart body goes as the FormData itself (the
      // browser writes the boundary). The schema types the part as a string (format: binary).
      return call(api.POST('/api/orgs/{orgId}/projects/{projectId}/files', {
        params: { path: { orgId, projectId } }, body: form as unknown as { file: string }, bodySerializer: (b) => b as unknown as FormData,
      }));
    },
    { invalidate: [filesKey(orgId, projectId)], onSuccess: () => { setFile(null); setRound(round + 1); } },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (file) send.mutate(file);
  };
  return (
    <form onSubmit={submit} aria-label="Upload a file">
      <div className="field">
        <label htmlFor="upload-file">File</label>
        <input key={round} id="upload-file" type="file" required onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
      </div>
      <Refusal error={send.error} />
      {send.data ? (
        <p role="status">
          Uploaded {send.data.name}: {send.data.scanned ? 'it passed every check.' : 'it passed every check but the malware scan, which this development server skips.'}
        </p>
      ) : null}
      <Submit busy={send.isPending}>Upload</Submit>
    </form>
  );
}

function FileRow({ orgId, org, f }: { orgId: string; org: MyOrg | undefined; f: StoredFile }) {
  const remove = useAction(
    () => call(api.DELETE('/api/orgs/{orgId}/projects/{projectId}/files/{fileId}', { params: { path: { orgId, projectId: f.projectId, fileId: f.id } } })),
    { invalidate: [filesKey(orgId, f.projectId)] },
  );
  const href = `/api/orgs/${encodeURIComponent(orgId)}/projects/${encodeURIComponent(f.projectId)}/files/${encodeURIComponent(f.id)}/content`;
  return (
    <li aria-label={f.name}>
      <div>
        <strong>{f.name}</strong>{' '}
        <span className="hint">
          {f.contentType}, {bytes(f.sizeBytes)}, added {when(f.createdAt)}{f.scanned ? '' : ' (not scanned: development opt-out)'}
        </span>
        <div className="hint mono" title="SHA-256 of the file">{f.sha256.slice(0, 16)}…</div>
      </div>
      <div className="row">
        {can(org, 'GET /api/orgs/{orgId}/projects/{projectId}/files/{fileId}/content') ? <a href={href} download={f.name}>Download {f.name}</a> : null}
        {can(org, 'DELETE /api/orgs/{orgId}/projects/{projectId}/files/{fileId}') ? (
          <Confirm label={`Delete ${f.name}`} question="Delete this file?" busy={remove.isPending} onConfirm={() => remove.mutate(undefined)} />
        ) : null}
      </div>
      <Refusal error={remove.error} />
    </li>
  );
}
