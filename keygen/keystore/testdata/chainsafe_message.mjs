// Makes chainsafe_message.json: a message (a signed exit's JSON, as Lido's
// validator-ejector encryptor/encrypt.ts encrypts it) sealed by
// @chainsafe/bls-keystore 3.1.0's create() with its defaults (pbkdf2,
// c=262144), empty pubkey and path, as the encryptor calls it.
// Run once: node chainsafe_message.mjs > chainsafe_message.json, with
// node_modules from internal/opscheck's lockfile.
import { create } from '@chainsafe/bls-keystore';

const password = 'ejector messages 🔑 password';
const message = '{"message": {"epoch": "0", "validator_index": "123456"}, "signature": "0x' + 'ab'.repeat(96) + '"}';
const store = await create(password, new TextEncoder().encode(message), new Uint8Array(), '');
process.stdout.write(JSON.stringify({ password, message, keystore: store }, null, 1) + '\n');
