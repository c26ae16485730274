import { describe, expect, it } from 'vitest';

import { BoxRunError, errorText, parseError } from '../api';

describe('parseError', () => {
  it('reads the API error body', () => {
    const err = parseError(
      409,
      '{"code": "NAME_ALREADY_EXISTS", "message": "a box named \'x\' already exists"}'
    );
    expect(err).toBeInstanceOf(BoxRunError);
    expect(err.code).toBe('NAME_ALREADY_EXISTS');
    expect(err.status).toBe(409);
    expect(errorText(err)).toBe("a box named 'x' already exists (NAME_ALREADY_EXISTS)");
  });

  it('names the status when the body is not the API format', () => {
    expect(parseError(404, '', 'Not Found')).toMatchObject({
      code: 'NOT_FOUND',
      message: 'Not Found'
    });
    const html = parseError(500, '<html><body><h1>500: Internal Server Error</h1></body></html>');
    expect(html.code).toBe('RUNTIME_ERROR');
    expect(html.message).toBe('500: Internal Server Error');
    expect(parseError(403, '{"reason": "no XSRF"}').message).toBe('no XSRF');
    expect(parseError(503, 'x'.repeat(1000), 'Service Unavailable').message).toBe(
      'Service Unavailable'
    );
    expect(parseError(502, '').message).toBe('HTTP 502');
  });
});

describe('errorText', () => {
  it('says anything thrown in words', () => {
    expect(errorText(new Error('boom'))).toBe('boom');
    expect(errorText('plain')).toBe('plain');
  });
});
