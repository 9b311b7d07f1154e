// Makes chainsafe_encrypted_exit.json: the ethstaker-deposit-cli exit file
// of oracle_sister_hoodi_exit.json encrypted as Lido's validator-ejector
// encryptor (encryptor/encrypt.ts) does: @chainsafe/bls-keystore 3.1.0's
// create(password, utf8 bytes of the file, empty pubkey, empty path) with
// its default kdf (pbkdf2, c=262144). The password is as a password file
// holds it, with its newline (the ejector reads MESSAGES_PASSWORD_FILE
// whole; EIP-2335 normalisation drops the newline).
// Run once: node chainsafe_encrypted_exit.mjs > chainsafe_encrypted_exit.json
// with node_modules from internal/opscheck's lockfile.
import { readFileSync } from 'node:fs';
import { create } from '@chainsafe/bls-keystore';

const v = JSON.parse(readFileSync(new URL('./oracle_sister_hoodi_exit.json', import.meta.url), 'utf8'));
const password = 'ejector password for the hoodi vector\n';
const store = await create(password, new TextEncoder().encode(v.ethstaker_file), new Uint8Array(), '');
process.stdout.write(JSON.stringify({
  source: 'oracle_sister_hoodi_exit.json (ethstaker_file), encrypted by @chainsafe/bls-keystore 3.1.0 create() as validator-ejector encryptor/encrypt.ts calls it',
  produced_by: 'chainsafe_encrypted_exit.mjs',
  password,
  file_name: v.ethstaker_file_name,
  encrypted_file: JSON.stringify(store),
}, null, 1) + '\n');
