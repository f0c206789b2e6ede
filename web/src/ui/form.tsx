import { useEffect, useId, useRef, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes, type TextareaHTMLAttributes } from 'react';
import { fieldError } from './problem';

interface FieldProps extends InputHTMLAttributes<HTMLInputElement> {
  label: string;
  /** The request field this input feeds, to show the server's message for it. */
  field?: string;
  error?: unknown;
  hint?: ReactNode;
}

/** A labelled input that shows the server's complaint about it. */
export function Field({ label, field, error, hint, ...input }: FieldProps) {
  const id = useId();
  const message = field ? fieldError(error, field) : undefined;
  // A controlled input's value is mirrored into its `value` attribute by React, where CSS
  // attribute selectors, DOM snapshots and extensions read it. A password, credential or secret
  // stays in the property only: the input is left uncontrolled and the state pushed into it.
  const secret = input.type === 'password';
  const ref = useRef<HTMLInputElement>(null);
  const wanted = secret ? String(input.value ?? '') : null;
  useEffect(() => {
    if (wanted !== null && ref.current && ref.current.value !== wanted) ref.current.value = wanted;
  }, [wanted]);
  const { value, ...rest } = input;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input ref={ref} id={id} aria-invalid={message ? true : undefined} aria-describedby={message || hint ? `${id}-note` : undefined} {...(secret ? rest : { ...rest, value })} />
      {message || hint ? (
        <small id={`${id}-note`} className={message ? 'field-error' : 'hint'}>
          {message ?? hint}
        </small>
      ) : null}
    </div>
  );
}

export function TextArea({ label, ...area }: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} {...area} />
    </div>
  );
}

export function Select({ label, children, ...select }: SelectHTMLAttributes<HTMLSelectElement> & { label: string; children: ReactNode }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} {...select}>
        {children}
      </select>
    </div>
  );
}

export function Checkbox({ label, ...input }: InputHTMLAttributes<HTMLInputElement> & { label: ReactNode }) {
  const id = useId();
  return (
    <div className="check">
      <input id={id} type="checkbox" {...input} />
      <label htmlFor={id}>{label}</label>
    </div>
  );
}

/** A submit button that says it is busy (long operations show progress). */
export function Submit({ busy, children, ...rest }: { busy?: boolean; children: ReactNode; disabled?: boolean; className?: string }) {
  return (
    <button type="submit" disabled={busy || rest.disabled} aria-busy={busy || undefined} className={rest.className}>
      {busy ? 'Working…' : children}
    </button>
  );
}
