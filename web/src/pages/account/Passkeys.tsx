import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { createPasskey, passkeysAvailable } from '../../auth/webauthn';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged, when } from '../../ui/table';

const KEY = ['me', 'passkeys'];
const INVALIDATE = [KEY, ['me', 'mfa']];
interface Passkey { id: string; name: string; createdAt: string; lastUsedAt: string | null; transports: string[] }

/** Your passkeys: add one with this browser's authenticator, rename, remove. */
export function Passkeys() {
  const list = useQuery({ queryKey: KEY, queryFn: () => call(api.GET('/api/me/passkeys')) });
  return (
    <>
      <Add />
      <section aria-labelledby="pk-list">
        <h2 id="pk-list">Your passkeys</h2>
        {list.isPending ? <Loading what="passkeys" /> : list.isError ? <ProblemView error={list.error} /> : (
          <Paged items={list.data.passkeys} label="Passkeys" empty="No passkeys yet." render={(p) => <Row key={p.id} passkey={p} />} />
        )}
      </section>
    </>
  );
}

function Add() {
  const [name, setName] = useState('');
  const add = useAction(
    async (label: string) => {
      // Options and the ceremony token first, then the authenticator, then the attestation back.
      const start = await call(api.POST('/api/me/passkeys/registration-options'));
      const response = await createPasskey(start.options);
      return call(api.POST('/api/me/passkeys', { body: { ceremonyToken: start.ceremonyToken, name: label, response } }));
    },
    { invalidate: INVALIDATE, onSuccess: () => setName('') },
  );
  if (!passkeysAvailable()) return <p>This browser cannot create passkeys.</p>;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    add.mutate(name.trim());
  };
  return (
    <section aria-labelledby="pk-add">
      <h2 id="pk-add">Add a passkey</h2>
      <form onSubmit={submit}>
        <Field label="Passkey name" field="name" error={add.error} value={name} onChange={(e) => setName(e.target.value)} maxLength={64} required />
        <ProblemView error={add.error} />
        <Submit busy={add.isPending}>Add passkey</Submit>
      </form>
    </section>
  );
}

function Row({ passkey }: { passkey: Passkey }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(passkey.name);
  const path = { params: { path: { passkeyId: passkey.id } } };
  const rename = useAction((n: string) => call(api.PATCH('/api/me/passkeys/{passkeyId}', { ...path, body: { name: n } })), {
    invalidate: INVALIDATE,
    onSuccess: () => setEditing(false),
  });
  const remove = useAction(() => call(api.DELETE('/api/me/passkeys/{passkeyId}', path)), { invalidate: INVALIDATE });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    rename.mutate(name.trim());
  };
  return (
    <li>
      {editing ? (
        <form onSubmit={submit} className="row">
          <Field label={`New name for ${passkey.name}`} field="name" error={rename.error} value={name} onChange={(e) => setName(e.target.value)} maxLength={64} required />
          <Submit busy={rename.isPending}>Save</Submit>
          <button type="button" onClick={() => setEditing(false)}>Cancel</button>
        </form>
      ) : (
        <>
          <strong>{passkey.name}</strong>{' '}
          <span>added {when(passkey.createdAt)}, last used {when(passkey.lastUsedAt)}</span>{' '}
          <button type="button" onClick={() => { setName(passkey.name); setEditing(true); }} aria-label={`Rename ${passkey.name}`}>Rename</button>{' '}
          <button type="button" disabled={remove.isPending} aria-busy={remove.isPending || undefined} onClick={() => remove.mutate(undefined)} aria-label={`Remove ${passkey.name}`}>
            {remove.isPending ? 'Working…' : 'Remove'}
          </button>
        </>
      )}
      <ProblemView error={rename.error ?? remove.error} />
    </li>
  );
}
