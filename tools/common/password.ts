/**
 * Reading passwords for the tools: from a file, from stdin, or from a TTY
 * prompt without echo. Never from argv. Passwords are returned as Buffers
 * so the caller can zero them.
 */
import { openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { MAX_PASSWORD_BYTES } from '../../server/rules.js';
import { EXIT, ToolError } from './exit-codes.js';

export interface PasswordSource {
  /** A file holding one password per line. */
  readonly passwordFile?: string | undefined;
  /** Read the passwords (one per line) from standard input. */
  readonly passwordStdin?: boolean | undefined;
  /**
   * When standard input is not a terminal, or carries data (stdinInUse),
   * prompt on the controlling terminal (/dev/tty) instead, as ssh and gpg
   * do. Off by default.
   */
  readonly promptOnDevTty?: boolean | undefined;
  /** Standard input carries the command's data: never prompt on it. */
  readonly stdinInUse?: boolean | undefined;
}

export interface PasswordPrompt {
  readonly label: string;
  /** Ask twice and require the same answer (for new passwords on a TTY). */
  readonly confirm?: boolean;
}

const inputError = (message: string): ToolError => new ToolError(EXIT.PASSWORD_INPUT, message);

/** Splits input into lines (LF or CRLF) without copying the bytes into strings. */
function splitLines(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i === data.length || data[i] === 0x0a) {
      let end = i;
      if (end > start && data[end - 1] === 0x0d) end -= 1;
      if (i < data.length || end > start) lines.push(Buffer.from(data.subarray(start, end)));
      start = i + 1;
    }
  }
  return lines;
}

function takeLines(data: Buffer, prompts: readonly PasswordPrompt[], where: string): Buffer[] {
  const lines = splitLines(data);
  data.fill(0);
  const wanted = lines.slice(0, prompts.length);
  for (const extra of lines.slice(prompts.length)) extra.fill(0);
  if (wanted.length < prompts.length) {
    for (const line of wanted) line.fill(0);
    throw inputError(`${where} must hold ${prompts.length} line(s): ${prompts.map((p) => p.label).join(', ')}`);
  }
  return wanted;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  const all = Buffer.concat(chunks);
  for (const chunk of chunks) chunk.fill(0);
  return all;
}

interface Terminal {
  readonly input: NodeJS.ReadStream | ReadStream;
  write(text: string): void;
  close(): void;
}

const stdinTerminal = (): Terminal => ({ input: process.stdin, write: (text) => process.stderr.write(text), close: () => undefined });

/** The controlling terminal, or undefined when the process has none. */
function openDevTty(): Terminal | undefined {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    return undefined;
  }
  const input = new ReadStream(fd);
  return {
    input,
    write: (text) => {
      writeSync(fd, text);
    },
    // The stream owns the descriptor: destroying it closes the fd.
    close: () => input.destroy(),
  };
}

/** One line from the TTY with echo off. Ctrl-C / Ctrl-D abort. */
function promptHidden(label: string, terminal: Terminal = stdinTerminal()): Promise<Buffer> {
  const { input } = terminal;
  return new Promise((resolve, reject) => {
    let typed = Buffer.alloc(0);
    const finish = (error?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      terminal.write('\n');
      if (error) {
        typed.fill(0);
        reject(error);
      } else {
        resolve(typed);
      }
    };
    const onData = (chunk: Buffer): void => {
      for (const byte of chunk) {
        if (byte === 0x0d || byte === 0x0a) return finish();
        if (byte === 0x03) return finish(inputError('interrupted'));
        if (byte === 0x04 && typed.length === 0) return finish(inputError('no password entered'));
        if (byte === 0x7f || byte === 0x08) {
          if (typed.length > 0) {
            const shorter = Buffer.from(typed.subarray(0, typed.length - 1));
            typed.fill(0);
            typed = shorter;
          }
          continue;
        }
        const longer = Buffer.concat([typed, Buffer.of(byte)]);
        typed.fill(0);
        typed = longer;
      }
      chunk.fill(0);
    };
    terminal.write(`${label}: `);
    input.setRawMode(true);
    input.resume();
    input.on('data', onData);
  });
}

function check(password: Buffer, label: string): Buffer {
  if (password.length === 0) throw inputError(`${label} is empty`);
  if (password.length > MAX_PASSWORD_BYTES) {
    password.fill(0);
    throw inputError(`${label} is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  return password;
}

/** Reads one password per prompt, in order. The caller zeroes the results. */
export async function readPasswords(source: PasswordSource, prompts: readonly PasswordPrompt[]): Promise<Buffer[]> {
  let passwords: Buffer[];
  if (source.passwordFile !== undefined) {
    let data: Buffer;
    try {
      if ((statSync(source.passwordFile).mode & 0o077) !== 0) {
        process.stderr.write(`warning: ${source.passwordFile} is readable by group or others\n`);
      }
      data = readFileSync(source.passwordFile);
    } catch (error) {
      throw inputError(`cannot read ${source.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    passwords = takeLines(data, prompts, source.passwordFile);
  } else if (source.passwordStdin) {
    passwords = takeLines(await readAll(process.stdin), prompts, 'standard input');
  } else {
    let terminal: Terminal | undefined = process.stdin.isTTY && !source.stdinInUse ? stdinTerminal() : undefined;
    if (!terminal && source.promptOnDevTty) terminal = openDevTty();
    if (!terminal) throw inputError('no TTY to prompt on: use --password-file FILE or --password-stdin');
    passwords = [];
    try {
      for (const prompt of prompts) {
        const first = await promptHidden(prompt.label, terminal);
        if (prompt.confirm) {
          const again = await promptHidden(`${prompt.label} (again)`, terminal);
          const same = first.equals(again);
          again.fill(0);
          if (!same) {
            first.fill(0);
            throw inputError('the passwords do not match');
          }
        }
        passwords.push(first);
      }
    } catch (error) {
      for (const password of passwords) password.fill(0);
      throw error;
    } finally {
      terminal.close();
    }
  }
  try {
    return passwords.map((password, index) => check(password, prompts[index]!.label));
  } catch (error) {
    for (const password of passwords) password.fill(0);
    throw error;
  }
}
