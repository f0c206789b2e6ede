import { useState, type FormEvent } from 'react';
import { Checkbox, Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { EVENT_TYPES, type Subscription } from './events';

export interface EndpointDraft {
  url: string;
  description: string;
  events: Subscription[];
}

/** The endpoint form, for create and edit: URL, description, the event types ('*' for all). */
export function EndpointForm({ initial, busy, error, submitLabel, onSubmit }: {
  initial: EndpointDraft;
  busy: boolean;
  error: unknown;
  submitLabel: string;
  onSubmit: (d: EndpointDraft) => void;
}) {
  const [url, setUrl] = useState(initial.url);
  const [description, setDescription] = useState(initial.description);
  const [events, setEvents] = useState<Subscription[]>(initial.events);
  const toggle = (e: Subscription, on: boolean) => setEvents(on ? [...events, e] : events.filter((x) => x !== e));
  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    onSubmit({ url, description, events });
  };
  return (
    <form onSubmit={submit} aria-label={submitLabel}>
      <Field label="Endpoint URL" type="url" field="url" error={error} value={url} onChange={(e) => setUrl(e.target.value)} required maxLength={2048} />
      <Field label="Description" field="description" error={error} value={description} onChange={(e) => setDescription(e.target.value)} maxLength={200} />
      <fieldset>
        <legend>Event types</legend>
        <Checkbox label="Every event type, present and future" checked={events.includes('*')} onChange={(e) => toggle('*', e.target.checked)} />
        {events.includes('*')
          ? null
          : EVENT_TYPES.map((t) => <Checkbox key={t} label={<code>{t}</code>} checked={events.includes(t)} onChange={(e) => toggle(t, e.target.checked)} />)}
      </fieldset>
      <ProblemView error={error} />
      <Submit busy={busy} disabled={events.length === 0 || !url}>{submitLabel}</Submit>
    </form>
  );
}
