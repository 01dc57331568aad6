// Generated from the server's OpenAPI document by scripts/api-schema.ts: do not edit.
export interface paths {
    "/api/v1/auth/login": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Sign in with e-mail and password; answers a session token for `Authorization: Bearer`
         * @description With `cookie: true` (browsers) the session goes into an httpOnly, SameSite=Strict cookie instead of the answer; requests signed in by that cookie that change something must come from this origin (`Origin` / `Sec-Fetch-Site`), and `POST /api/v1/auth/logout` removes it.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        email: string;
                        password: string;
                        /** @description set the session as an httpOnly cookie and leave the token out of the answer */
                        cookie?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @description absent with `cookie: true` */
                            token?: string;
                            expiresAt: string;
                            user: {
                                id: number;
                                email: string;
                                name: string;
                                serverAdmin: boolean;
                                createdAt: string;
                            };
                        };
                    };
                };
                /** @description Default Response */
                401: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/logout": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Revoke the session token of this request (and remove the browser's session cookie) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Who am I: the signed-in user and their memberships */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            email: string;
                            name: string;
                            serverAdmin: boolean;
                            createdAt: string;
                            memberships: {
                                orgId: number;
                                orgName: string;
                                orgSlug: string;
                                /** @enum {string} */
                                role: "owner" | "admin" | "operator" | "viewer";
                                fleetIds: number[] | null;
                                /** @description what this membership allows (fleet actions only in its fleets when narrowed) */
                                actions: ("org.read" | "org.update" | "org.delete" | "member.read" | "member.manage" | "fleet.read" | "fleet.create" | "fleet.update" | "fleet.delete" | "device_type.read" | "device_type.manage" | "device.read" | "device.create" | "device.update" | "device.delete" | "device.tag" | "device.variable.write" | "fleet.variable.write" | "audit.read" | "device.ssh" | "device.terminal" | "device.connect" | "device.diagnose" | "provisioning_key.manage" | "device.credentials" | "device.decommission" | "device.authorize" | "ports.manage" | "session.terminate")[];
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /** Change my name or password (a new password needs currentPassword and ends my other sessions) */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name?: string;
                        password?: string;
                        currentPassword?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            email: string;
                            name: string;
                            serverAdmin: boolean;
                            createdAt: string;
                            memberships: {
                                orgId: number;
                                orgName: string;
                                orgSlug: string;
                                /** @enum {string} */
                                role: "owner" | "admin" | "operator" | "viewer";
                                fleetIds: number[] | null;
                                /** @description what this membership allows (fleet actions only in its fleets when narrowed) */
                                actions: ("org.read" | "org.update" | "org.delete" | "member.read" | "member.manage" | "fleet.read" | "fleet.create" | "fleet.update" | "fleet.delete" | "device_type.read" | "device_type.manage" | "device.read" | "device.create" | "device.update" | "device.delete" | "device.tag" | "device.variable.write" | "fleet.variable.write" | "audit.read" | "device.ssh" | "device.terminal" | "device.connect" | "device.diagnose" | "provisioning_key.manage" | "device.credentials" | "device.decommission" | "device.authorize" | "ports.manage" | "session.terminate")[];
                            }[];
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Users I can see: the people of my organizations (all users for server admins) */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    q?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                email: string;
                                name: string;
                                serverAdmin: boolean;
                                createdAt: string;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create a user (server admins). Without a password, a random one is answered once. */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** Format: email */
                        email: string;
                        name?: string;
                        password?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            email: string;
                            name: string;
                            serverAdmin: boolean;
                            createdAt: string;
                            password?: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/users/{userId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One user */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    userId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            email: string;
                            name: string;
                            serverAdmin: boolean;
                            createdAt: string;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete a user (server admins) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    userId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Change a user (yourself, or anyone for server admins) */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    userId: number;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name?: string;
                        password?: string;
                        currentPassword?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            email: string;
                            name: string;
                            serverAdmin: boolean;
                            createdAt: string;
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/orgs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** My organizations */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                slug: string;
                                name: string;
                                createdAt: string;
                                updatedAt: string;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create an organization; you become its owner */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        slug?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            slug: string;
                            name: string;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/orgs/{orgId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One organization */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            slug: string;
                            name: string;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete an empty organization (owners) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Rename an organization */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            slug: string;
                            name: string;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/orgs/{orgId}/members": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** People of an organization and their roles */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                };
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                userId: number;
                                email: string;
                                name: string;
                                /** @enum {string} */
                                role: "owner" | "admin" | "operator" | "viewer";
                                fleetIds: number[] | null;
                                createdAt: string;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Add a person with a role; an unknown e-mail creates the user and answers a one-time password */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** Format: email */
                        email: string;
                        /** @enum {string} */
                        role: "owner" | "admin" | "operator" | "viewer";
                        /** @description narrow the membership to these fleets (not for owners); null = the whole organization */
                        fleetIds?: number[] | null;
                        name?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            userId: number;
                            email: string;
                            name: string;
                            /** @enum {string} */
                            role: "owner" | "admin" | "operator" | "viewer";
                            fleetIds: number[] | null;
                            createdAt: string;
                            password?: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/orgs/{orgId}/members/{userId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Remove a person from the organization (or leave it yourself) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                    userId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Change a person's role or fleet scope */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                    userId: number;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @enum {string} */
                        role?: "owner" | "admin" | "operator" | "viewer";
                        /** @description narrow the membership to these fleets (not for owners); null = the whole organization */
                        fleetIds?: number[] | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            userId: number;
                            email: string;
                            name: string;
                            /** @enum {string} */
                            role: "owner" | "admin" | "operator" | "viewer";
                            fleetIds: number[] | null;
                            createdAt: string;
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/api-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** My API keys (the keys themselves are never shown again) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                name: string;
                                prefix: string;
                                createdAt: string;
                                expiresAt: string | null;
                                lastUsedAt: string | null;
                                revokedAt: string | null;
                                /**
                                 * @description null: the person's own key; else the service this service credential is for
                                 * @enum {string|null}
                                 */
                                service: "openssh" | null;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create an API key for scripts; the answer holds the key once */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        expiresInDays?: number;
                        /**
                         * @description make a service credential (server administrators only) that may do only what the service needs: `openssh`, for the OpenSSH bastion (look up SSH keys, open sessions as the SSH key's owner)
                         * @enum {string}
                         */
                        service?: "openssh";
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            name: string;
                            prefix: string;
                            createdAt: string;
                            expiresAt: string | null;
                            lastUsedAt: string | null;
                            revokedAt: string | null;
                            /**
                             * @description null: the person's own key; else the service this service credential is for
                             * @enum {string|null}
                             */
                            service: "openssh" | null;
                            key: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/api-keys/{keyId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke one of my API keys */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    keyId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/ssh-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** My SSH public keys */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                name: string;
                                algorithm: string;
                                fingerprint: string;
                                publicKey: string;
                                createdAt: string;
                                lastUsedAt: string | null;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Register an SSH public key (one line of id_*.pub) for the SSH gateway */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        publicKey: string;
                        name?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            name: string;
                            algorithm: string;
                            fingerprint: string;
                            publicKey: string;
                            createdAt: string;
                            lastUsedAt: string | null;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/ssh-keys/{keyId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Remove one of my SSH keys */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    keyId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Fleets I can see */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    orgId?: number;
                    /** @description text in the name */
                    q?: string;
                    sort?: "name" | "-name" | "createdAt" | "-createdAt";
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                orgId: number;
                                name: string;
                                description: string;
                                defaultDeviceType: string | null;
                                deviceCount: number;
                                tags: {
                                    [key: string]: string;
                                };
                                createdAt: string;
                                updatedAt: string;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create a fleet in an organization */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        orgId: number;
                        name: string;
                        description?: string;
                        defaultDeviceType?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            name: string;
                            description: string;
                            defaultDeviceType: string | null;
                            deviceCount: number;
                            tags: {
                                [key: string]: string;
                            };
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One fleet */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            name: string;
                            description: string;
                            defaultDeviceType: string | null;
                            deviceCount: number;
                            tags: {
                                [key: string]: string;
                            };
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete an empty fleet */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Change a fleet */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name?: string;
                        description?: string;
                        defaultDeviceType?: string | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            name: string;
                            description: string;
                            defaultDeviceType: string | null;
                            deviceCount: number;
                            tags: {
                                [key: string]: string;
                            };
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/tags": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A fleet's tags */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            tags: {
                                [key: string]: string;
                            };
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/tags/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a fleet tag */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                    key: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        value: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        post?: never;
        /** Remove a fleet tag */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                    key: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/device-types": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Built-in device types and the custom ones of my organizations */
        get: {
            parameters: {
                query?: {
                    orgId?: number;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number | null;
                                orgId: number | null;
                                slug: string;
                                name: string;
                                arch: string;
                                builtin: boolean;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Add a custom device type to an organization */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        orgId: number;
                        slug: string;
                        name: string;
                        arch: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number | null;
                            orgId: number | null;
                            slug: string;
                            name: string;
                            arch: string;
                            builtin: boolean;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/device-types/{typeId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Remove an unused custom device type */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    typeId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Devices I can see, filtered and sorted */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    orgId?: number;
                    fleetId?: number;
                    /** @description key or key=value */
                    tag?: string;
                    /** @description text in the name or uuid */
                    q?: string;
                    status?: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                    /** @description only devices of this device type */
                    deviceType?: string;
                    /** @description default name; "-" sorts descending; ties go by id, ascending; lastSeenAt puts devices never seen last either way */
                    sort?: "name" | "-name" | "createdAt" | "-createdAt" | "lastSeenAt" | "-lastSeenAt";
                    /** @description keyset paging: the nextCursor of the previous page, with the same sort and filters (then leave page out). Cheaper than page for deep pages: the server starts where the last page ended instead of skipping (page - 1) × limit devices */
                    after?: string;
                    /** @description the keys of each device to answer, separated by commas (e.g. name,status,lastSeenAt); id always comes. Default: every key. A table that shows a few columns is answered faster and smaller: a device's state report is most of its size */
                    fields?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                uuid?: string;
                                name?: string;
                                orgId?: number;
                                fleetId?: number;
                                fleetName?: string;
                                deviceType?: string;
                                notes?: string;
                                /** @enum {string} */
                                status?: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                                tags?: {
                                    [key: string]: string;
                                };
                                attributes?: {
                                    [key: string]: unknown;
                                } | null;
                                /** @description the links the device is online through: its agent's tunnel, OpenVPN, mender-connect */
                                onlineVia?: ("tunnel" | "vpn" | "mender-connect")[];
                                /** @description its VPN address while connected through OpenVPN */
                                vpnAddress?: string | null;
                                /** @description last tunnel connect (presence is written about once a second) */
                                connectedAt?: string | null;
                                disconnectedAt?: string | null;
                                lastSeenAt?: string | null;
                                agentVersion?: string | null;
                                state?: {
                                    [key: string]: unknown;
                                } | null;
                                stateReportedAt?: string | null;
                                /** @description what the agent answered about the last variables it applied */
                                variablesApplied?: {
                                    revision: number;
                                    at: string;
                                    error: string | null;
                                } | null;
                                createdAt?: string;
                                updatedAt?: string;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                            /** @description pass as after to get the next page; null on the last page */
                            nextCursor: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Add a device to a fleet by hand (devices also enroll themselves: provisioning key, signed auth request) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        fleetId: number;
                        /** @description default: the fleet's default device type */
                        deviceType?: string;
                        name?: string;
                        uuid?: string;
                        notes?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                            name: string;
                            orgId: number;
                            fleetId: number;
                            fleetName: string;
                            deviceType: string;
                            notes: string;
                            /** @enum {string} */
                            status: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                            tags: {
                                [key: string]: string;
                            };
                            attributes: {
                                [key: string]: unknown;
                            } | null;
                            /** @description the links the device is online through: its agent's tunnel, OpenVPN, mender-connect */
                            onlineVia: ("tunnel" | "vpn" | "mender-connect")[];
                            /** @description its VPN address while connected through OpenVPN */
                            vpnAddress: string | null;
                            /** @description last tunnel connect (presence is written about once a second) */
                            connectedAt: string | null;
                            disconnectedAt: string | null;
                            lastSeenAt: string | null;
                            agentVersion: string | null;
                            state: {
                                [key: string]: unknown;
                            } | null;
                            stateReportedAt: string | null;
                            /** @description what the agent answered about the last variables it applied */
                            variablesApplied: {
                                revision: number;
                                at: string;
                                error: string | null;
                            } | null;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One device */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                            name: string;
                            orgId: number;
                            fleetId: number;
                            fleetName: string;
                            deviceType: string;
                            notes: string;
                            /** @enum {string} */
                            status: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                            tags: {
                                [key: string]: string;
                            };
                            attributes: {
                                [key: string]: unknown;
                            } | null;
                            /** @description the links the device is online through: its agent's tunnel, OpenVPN, mender-connect */
                            onlineVia: ("tunnel" | "vpn" | "mender-connect")[];
                            /** @description its VPN address while connected through OpenVPN */
                            vpnAddress: string | null;
                            /** @description last tunnel connect (presence is written about once a second) */
                            connectedAt: string | null;
                            disconnectedAt: string | null;
                            lastSeenAt: string | null;
                            agentVersion: string | null;
                            state: {
                                [key: string]: unknown;
                            } | null;
                            stateReportedAt: string | null;
                            /** @description what the agent answered about the last variables it applied */
                            variablesApplied: {
                                revision: number;
                                at: string;
                                error: string | null;
                            } | null;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete a device record */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Rename, annotate, retype or move a device to another fleet of its organization */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name?: string;
                        notes?: string;
                        deviceType?: string;
                        fleetId?: number;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                            name: string;
                            orgId: number;
                            fleetId: number;
                            fleetName: string;
                            deviceType: string;
                            notes: string;
                            /** @enum {string} */
                            status: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                            tags: {
                                [key: string]: string;
                            };
                            attributes: {
                                [key: string]: unknown;
                            } | null;
                            /** @description the links the device is online through: its agent's tunnel, OpenVPN, mender-connect */
                            onlineVia: ("tunnel" | "vpn" | "mender-connect")[];
                            /** @description its VPN address while connected through OpenVPN */
                            vpnAddress: string | null;
                            /** @description last tunnel connect (presence is written about once a second) */
                            connectedAt: string | null;
                            disconnectedAt: string | null;
                            lastSeenAt: string | null;
                            agentVersion: string | null;
                            state: {
                                [key: string]: unknown;
                            } | null;
                            stateReportedAt: string | null;
                            /** @description what the agent answered about the last variables it applied */
                            variablesApplied: {
                                revision: number;
                                at: string;
                                error: string | null;
                            } | null;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        trace?: never;
    };
    "/api/v1/devices/{device}/tags": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A device's tags */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            tags: {
                                [key: string]: string;
                            };
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/tags/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a device tag */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    key: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        value: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        post?: never;
        /** Remove a device tag */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    key: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/provisioning-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A fleet's provisioning keys (the keys themselves are never shown again) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                orgId: number;
                                fleetId: number;
                                name: string;
                                prefix: string;
                                maxUses: number | null;
                                uses: number;
                                createdAt: string;
                                expiresAt: string | null;
                                lastUsedAt: string | null;
                                revokedAt: string | null;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create a provisioning key with which devices register into the fleet; shown once. With `key`: restore one */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        expiresInDays?: number;
                        maxUses?: number;
                        /** @description Restore a key that devices already hold (after a database loss) instead of generating one; a value some key has already: 409 */
                        key?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            fleetId: number;
                            name: string;
                            prefix: string;
                            maxUses: number | null;
                            uses: number;
                            createdAt: string;
                            expiresAt: string | null;
                            lastUsedAt: string | null;
                            revokedAt: string | null;
                            key: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/provisioning-keys/{keyId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke a provisioning key (devices it registered keep working) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    keyId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/register": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A device registers itself with a provisioning key (balena POST /device/register) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        uuid: string;
                        device_type: string;
                        api_key: string;
                        name?: string;
                        os_version?: string;
                        agent_version?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/device/self": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The calling device itself (device credential: uuid + key, or a device token) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                            name: string;
                            orgId: number;
                            fleetId: number;
                            deviceType: string;
                            osVersion: string | null;
                            agentVersion: string | null;
                            /** @enum {string} */
                            status: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                            /** @enum {string} */
                            credential: "device_key" | "device_token";
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/device/self/key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Replace the calling device's key: with the one sent, or a generated one answered once */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        key?: string;
                    } | null;
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            keyId: number;
                            key?: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A device's keys (metadata only: the keys are never stored) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                /** @enum {string} */
                                origin: "register" | "rotate" | "import" | "recovery" | "exchange";
                                createdAt: string;
                                lastUsedAt: string | null;
                                revokedAt: string | null;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Revoke all of a device's keys and tokens: refused from its next request on */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            revoked: number;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/keys/{keyId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke one of a device's keys (and its tokens issued so far) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    keyId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            revoked: number;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/recovery-candidates": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Unknown devices presenting uuid + key (after a database loss); server admins */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                uuid: string;
                                sourceIp: string | null;
                                agentVersion: string | null;
                                firstSeenAt: string;
                                lastSeenAt: string;
                                attempts: number;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/recovery-candidates/adopt": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Recreate candidates as devices of a fleet, with their own keys */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ids: number[];
                        fleetId: number;
                        deviceType?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                uuid: string | null;
                                /** @enum {string} */
                                outcome: "adopted" | "not-found" | "conflict";
                                deviceId?: number;
                                reason?: string;
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/recovery-candidates/discard": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Remove candidates from the queue */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ids: number[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            discarded: number;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/recovery-candidates/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Remove one candidate from the queue */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            discarded: number;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/import": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Restore devices with their own uuid + key (balena config.json), up to 500 per call */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        items: {
                            uuid: string;
                            apiKey: string;
                            fleetId: number;
                            deviceType?: string;
                            name?: string;
                        }[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                uuid: string;
                                /** @enum {string} */
                                outcome: "created" | "present" | "failed";
                                deviceId?: number;
                                reason?: string;
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/decommission": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Decommission a device: every credential refused at once, live connections closed */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            uuid: string;
                            name: string;
                            orgId: number;
                            fleetId: number;
                            fleetName: string;
                            deviceType: string;
                            notes: string;
                            /** @enum {string} */
                            status: "online" | "offline" | "pending" | "never-connected" | "decommissioned";
                            tags: {
                                [key: string]: string;
                            };
                            attributes: {
                                [key: string]: unknown;
                            } | null;
                            /** @description the links the device is online through: its agent's tunnel, OpenVPN, mender-connect */
                            onlineVia: ("tunnel" | "vpn" | "mender-connect")[];
                            /** @description its VPN address while connected through OpenVPN */
                            vpnAddress: string | null;
                            /** @description last tunnel connect (presence is written about once a second) */
                            connectedAt: string | null;
                            disconnectedAt: string | null;
                            lastSeenAt: string | null;
                            agentVersion: string | null;
                            state: {
                                [key: string]: unknown;
                            } | null;
                            stateReportedAt: string | null;
                            /** @description what the agent answered about the last variables it applied */
                            variablesApplied: {
                                revision: number;
                                at: string;
                                error: string | null;
                            } | null;
                            createdAt: string;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Device auth sets (identity + public key) I can see, newest first */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    status?: "pending" | "accepted" | "rejected" | "preauthorized";
                    orgId?: number;
                    deviceId?: number;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                orgId: number;
                                deviceId: number | null;
                                deviceUuid: string | null;
                                fleetId: number | null;
                                identity: {
                                    [key: string]: string | string[];
                                };
                                identityHash: string;
                                publicKey: string;
                                /** @enum {string} */
                                keyType: "rsa" | "ecdsa-p256" | "ecdsa-p384" | "ed25519";
                                /** @enum {string} */
                                status: "pending" | "accepted" | "rejected" | "preauthorized";
                                sourceIp: string | null;
                                createdAt: string;
                                updatedAt: string;
                                lastRequestAt: string | null;
                                requestCount: number;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One auth set */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            deviceId: number | null;
                            deviceUuid: string | null;
                            fleetId: number | null;
                            identity: {
                                [key: string]: string | string[];
                            };
                            identityHash: string;
                            publicKey: string;
                            /** @enum {string} */
                            keyType: "rsa" | "ecdsa-p256" | "ecdsa-p384" | "ed25519";
                            /** @enum {string} */
                            status: "pending" | "accepted" | "rejected" | "preauthorized";
                            sourceIp: string | null;
                            createdAt: string;
                            updatedAt: string;
                            lastRequestAt: string | null;
                            requestCount: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete an auth set (a device only preauthorized goes with it) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets/accept": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Accept auth sets: each device gets a token on its next request. A set without a device creates one in its proposed fleet, else `fleetId`, else the organization's oldest fleet */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ids: number[];
                        fleetId?: number;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                /** @enum {string} */
                                outcome: "accepted" | "rejected" | "error";
                                deviceId?: number;
                                reason?: string;
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets/reject": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Reject auth sets: their devices get 401 from now on */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ids: number[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                /** @enum {string} */
                                outcome: "accepted" | "rejected" | "error";
                                deviceId?: number;
                                reason?: string;
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets/{id}/status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set one auth set to accepted, rejected or pending */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: number;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @enum {string} */
                        status: "accepted" | "rejected" | "pending";
                        fleetId?: number;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            orgId: number;
                            deviceId: number | null;
                            deviceUuid: string | null;
                            fleetId: number | null;
                            identity: {
                                [key: string]: string | string[];
                            };
                            identityHash: string;
                            publicKey: string;
                            /** @enum {string} */
                            keyType: "rsa" | "ecdsa-p256" | "ecdsa-p384" | "ed25519";
                            /** @enum {string} */
                            status: "pending" | "accepted" | "rejected" | "preauthorized";
                            sourceIp: string | null;
                            createdAt: string;
                            updatedAt: string;
                            lastRequestAt: string | null;
                            requestCount: number;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth-sets/preauthorize": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Preauthorize devices (identity + PEM public key): each is accepted on its first signed auth request. Per-row result: created, conflict (identity known; pass force) or invalid */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        fleetId: number;
                        force?: boolean;
                        devices: {
                            /** @description identity attributes, e.g. {"mac":"02:12:61:13:6c:42"} */
                            identity: {
                                [key: string]: string | string[];
                            };
                            publicKey: string;
                            name?: string;
                        }[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            created: number;
                            conflicts: number;
                            invalid: number;
                            items: {
                                index: number;
                                /** @enum {string} */
                                outcome: "created" | "conflict" | "invalid";
                                identity?: {
                                    [key: string]: string | string[];
                                };
                                authSetId?: number;
                                device?: {
                                    id: number;
                                    uuid: string;
                                    name: string;
                                    fleetId: number;
                                };
                                reason?: string;
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/orgs/{orgId}/device-limit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The organization's device limit (null: unlimited) and how many devices it counts now */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            orgId: number;
                            limit: number | null;
                            /** @description devices the limit counts: not decommissioned, and accepted (an auth set accepted, or enrolled without auth sets) */
                            accepted: number;
                        };
                    };
                };
            };
        };
        /** Set the device limit (null: unlimited; 0: none may be accepted) — owners and admins */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        limit: number | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            orgId: number;
                            limit: number | null;
                            /** @description devices the limit counts: not decommissioned, and accepted (an auth set accepted, or enrolled without auth sets) */
                            accepted: number;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/variables": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A fleet's variables (secret values are null) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                name: string;
                                value: string | null;
                                secret: boolean;
                                updatedAt: string;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/variables/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a fleet-wide variable */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        value: string;
                        /** @description write-only: the value is never returned by the API */
                        secret?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            name: string;
                            value: string | null;
                            secret: boolean;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        post?: never;
        /** Remove a fleet-wide variable */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/variables": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A device's effective variables: its own, then its fleet's (secret values are null) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                name: string;
                                value: string | null;
                                secret: boolean;
                                updatedAt: string;
                                /** @enum {string} */
                                source: "device" | "fleet";
                                overridesFleet: boolean;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/variables/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a device variable (overrides the fleet's) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        value: string;
                        /** @description write-only: the value is never returned by the API */
                        secret?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            name: string;
                            value: string | null;
                            secret: boolean;
                            updatedAt: string;
                        };
                    };
                };
            };
        };
        post?: never;
        /** Remove a device variable */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null;
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/connections": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A device's connections (tunnel and OpenVPN), newest first (written about once a second) */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                };
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                /**
                                 * @description the agent's tunnel, OpenVPN or mender-connect
                                 * @enum {string}
                                 */
                                link: "tunnel" | "vpn" | "mender-connect";
                                connectedAt: string;
                                disconnectedAt: string | null;
                                /** @description null while the connection is open */
                                durationMs: number | null;
                                remoteAddress: string | null;
                                agentVersion: string | null;
                                /** @description the tunnel close code (4000-4008), see the protocol */
                                closeCode: number | null;
                                closeReason: string | null;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/state-history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The numbers of a device's state reports over time (CPU, memory, disk, temperature), oldest first: at most one sample a minute, kept 7 days */
        get: {
            parameters: {
                query?: {
                    /** @description the oldest sample wanted (ISO 8601 time); default: 24 hours ago */
                    since?: unknown;
                };
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            since: string;
                            items: {
                                at: string;
                                cpuPercent: number | null;
                                memory: {
                                    usedBytes: number;
                                    totalBytes: number;
                                } | null;
                                disk: {
                                    usedBytes: number;
                                    totalBytes: number;
                                } | null;
                                temperatureCelsius: number | null;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/orgs/{orgId}/dashboard": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An organization at a glance: devices by status per fleet, connects and disconnects per hour over the last 24 h, failed device authentications, the pending queue, live sessions. Scoped like the device list */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    orgId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            orgId: number;
                            /** @description when the figures were read */
                            at: string;
                            devices: {
                                total: {
                                    online: number;
                                    offline: number;
                                    pending: number;
                                    "never-connected": number;
                                    decommissioned: number;
                                };
                                fleets: {
                                    fleetId: number;
                                    name: string;
                                    counts: {
                                        online: number;
                                        offline: number;
                                        pending: number;
                                        "never-connected": number;
                                        decommissioned: number;
                                    };
                                }[];
                            };
                            /** @description 24 hourly buckets, oldest first, the last holding the current hour: tunnel and OpenVPN connects and disconnects from the connection history (written about once a second) */
                            connections: {
                                start: string;
                                connects: number;
                                disconnects: number;
                            }[];
                            /** @description refusals of devices recorded in the audit log over the last 24 h (audit events of this organization whose actor is a device or an unauthenticated caller and whose outcome is denied or failure: refused registrations, key exchanges, auth requests). Wrong device keys and tokens name no organization and are only counted in memory, so they are not included. null when the caller may not read the audit log */
                            failedDeviceAuthentications: number | null;
                            /** @description auth sets waiting for acceptance */
                            pendingAuthSets: number;
                            /** @description remote sessions open now */
                            liveSessions: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/fleets/{fleetId}/allowed-ports": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Ports people may reach on the fleet's devices (port forwarding, CONNECT) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ports: number[];
                            /**
                             * @description where the list comes from (default: [22])
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                        };
                    };
                };
            };
        };
        /** Set the fleet's port allow-list (admins); null goes back to the default ([22]) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates */
                    fleetId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ports: number[] | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ports: number[];
                            /**
                             * @description where the list comes from (default: [22])
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/allowed-ports": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Ports people may reach on the device: its own list, else its fleet’s, else [22] */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ports: number[];
                            /**
                             * @description where the list comes from (default: [22])
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                        };
                    };
                };
            };
        };
        /** Set the device's own port allow-list (admins); null goes back to its fleet's */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        ports: number[] | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ports: number[];
                            /**
                             * @description where the list comes from (default: [22])
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/ports/{port}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Whether I may open streams to this port of the device (`fleetgate tunnel` asks first)
         * @description Answers for people who may connect to the device (operators and above; viewers get 403). `allowed` says whether the port is on the allow-list now. With `Connection: Upgrade` and `Upgrade: fleetgate-stream`, the same URL opens a stream to the port: `101 Switching Protocols` once the device accepted, then the port's bytes both ways; refusals answer as here, 409 when the device is decommissioned, and 503 when it is offline or refuses the port.
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    port: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ports: number[];
                            /**
                             * @description where the list comes from (default: [22])
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                            port: number;
                            /** @description whether the port is on the allow-list (`ports`) */
                            allowed: boolean;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** People's sessions to devices (tunnel, SSH, CONNECT), live and ended, newest first (viewers and above) */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    orgId?: number;
                    /** @description device uuid */
                    device?: string;
                    /** @description true: only live sessions; false: only ended ones */
                    live?: "true" | "false";
                    /** @description only one surface: tunnel, connect, ssh, openssh, terminal, web, diagnostics, vnc, files, mender-cli */
                    surface?: string;
                    /** @description e-mail of who opened the sessions */
                    user?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: string;
                                orgId: number;
                                fleetId: number;
                                device: {
                                    id: number;
                                    uuid: string;
                                    name: string;
                                };
                                /** @description who opened the session */
                                user: {
                                    id: number | null;
                                    label: string;
                                };
                                /** @description how the person came: tunnel, connect, ssh, openssh, terminal, web, diagnostics, vnc, files, mender-cli */
                                surface: string;
                                /** @description the device port; null when the target is not a port */
                                port: number | null;
                                target: string;
                                clientAddress: string | null;
                                startedAt: string;
                                endedAt: string | null;
                                live: boolean;
                                /** @description bytes sent to the device (so far, while live) */
                                bytesToDevice: number;
                                /** @description bytes received from the device (so far, while live) */
                                bytesFromDevice: number;
                                /** @description how it ended: closed, reset: …, terminated by …; null while live */
                                outcome: string | null;
                                terminatedBy: {
                                    id: number | null;
                                    label: string;
                                } | null;
                                /** @description the fleetgate instance relaying it, as its /readyz names it (several instances on one database) */
                                instance: string | null;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/sessions/{sessionId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One session to a device */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description session id (from GET /api/v1/sessions) */
                    sessionId: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: string;
                            orgId: number;
                            fleetId: number;
                            device: {
                                id: number;
                                uuid: string;
                                name: string;
                            };
                            /** @description who opened the session */
                            user: {
                                id: number | null;
                                label: string;
                            };
                            /** @description how the person came: tunnel, connect, ssh, openssh, terminal, web, diagnostics, vnc, files, mender-cli */
                            surface: string;
                            /** @description the device port; null when the target is not a port */
                            port: number | null;
                            target: string;
                            clientAddress: string | null;
                            startedAt: string;
                            endedAt: string | null;
                            live: boolean;
                            /** @description bytes sent to the device (so far, while live) */
                            bytesToDevice: number;
                            /** @description bytes received from the device (so far, while live) */
                            bytesFromDevice: number;
                            /** @description how it ended: closed, reset: …, terminated by …; null while live */
                            outcome: string | null;
                            terminatedBy: {
                                id: number | null;
                                label: string;
                            } | null;
                            /** @description the fleetgate instance relaying it, as its /readyz names it (several instances on one database) */
                            instance: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/sessions/{sessionId}/terminate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** End a live session at once (admins): the person and the device see the connection reset; 409 when it already ended */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description session id (from GET /api/v1/sessions) */
                    sessionId: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: string;
                            orgId: number;
                            fleetId: number;
                            device: {
                                id: number;
                                uuid: string;
                                name: string;
                            };
                            /** @description who opened the session */
                            user: {
                                id: number | null;
                                label: string;
                            };
                            /** @description how the person came: tunnel, connect, ssh, openssh, terminal, web, diagnostics, vnc, files, mender-cli */
                            surface: string;
                            /** @description the device port; null when the target is not a port */
                            port: number | null;
                            target: string;
                            clientAddress: string | null;
                            startedAt: string;
                            endedAt: string | null;
                            live: boolean;
                            /** @description bytes sent to the device (so far, while live) */
                            bytesToDevice: number;
                            /** @description bytes received from the device (so far, while live) */
                            bytesFromDevice: number;
                            /** @description how it ended: closed, reset: …, terminated by …; null while live */
                            outcome: string | null;
                            terminatedBy: {
                                id: number | null;
                                label: string;
                            } | null;
                            /** @description the fleetgate instance relaying it, as its /readyz names it (several instances on one database) */
                            instance: string | null;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/orgs/{orgId}/session-recording": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Whether the organization's shell sessions are recorded */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            orgId: number;
                            /** @description shell sessions (SSH gateway, web terminal) are recorded (asciicast v2) */
                            enabled: boolean;
                        };
                    };
                };
            };
        };
        /** Turn recording of the organization's shell sessions on or off (admins) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates */
                    orgId: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        enabled: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            orgId: number;
                            /** @description shell sessions (SSH gateway, web terminal) are recorded (asciicast v2) */
                            enabled: boolean;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/sessions/{sessionId}/recording": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The recording of a shell session, as asciicast v2 (application/x-asciicast: a JSON header line, then [seconds, "o" | "r", data] lines); replay it with `fleetgate sessions play <id>` or asciinema
         * @description For operators and above of the session's organization (or fleet), who may open a shell there: viewers get 403, people who cannot see the session 404.
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description session id (from GET /api/v1/sessions) */
                    sessionId: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description asciicast v2 text */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": string;
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The audit log: who did what, to which resource, from where, with what outcome (newest first)
         * @description Lists the events of the organizations where you are an owner or admin and your own actions; server administrators also get the server-wide events (orgId null: sign-ins, failed ones too, users, API and service keys, SSH keys, recovery). `orgId` narrows to one organization, `scope=server` to the server-wide events (server administrators only, else 403; not with orgId, 400).
         */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                    orgId?: number;
                    /** @description server: only the server-wide events, those of no organization (server administrators) */
                    scope?: "server";
                    /** @description e-mail or user id */
                    actor?: string;
                    action?: string;
                    resourceType?: string;
                    resourceId?: string;
                    /** @description a session id (GET /api/v1/sessions): only that session's events (its stream opening and closing, recording, termination) */
                    session?: string;
                    since?: unknown;
                    until?: unknown;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                at: string;
                                orgId: number | null;
                                actor: {
                                    type: string;
                                    id: number | null;
                                    label: string;
                                };
                                action: string;
                                resourceType: string;
                                resourceId: string | null;
                                sourceIp: string | null;
                                outcome: string;
                                details: {
                                    [key: string]: unknown;
                                } | null;
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Live updates for my pages, as server-sent events (text/event-stream)
         * @description Events: `device` `{id, uuid, orgId, fleetId, status, onlineVia, vpnAddress, connectedAt, disconnectedAt, lastSeenAt}` when a device's presence changes (written about once a second); `change` `{action, resourceType, orgId}` after every change in my organizations (refetch what shows it); `end` `{reason}` when my sign-in ended (the stream then closes). Only what I may read is sent. A comment line every 25 s keeps it open. At most 16 streams per person (429).
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description the event stream */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": string;
                    };
                };
                /** @description Default Response */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/ssh/authorized-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Registered SSH keys for sshd's AuthorizedKeysCommand (`fleetgate ssh-authorized-keys`): by login, by fingerprint, or both; for the OpenSSH bastion's service credential (and server administrators) only */
        get: {
            parameters: {
                query?: {
                    /** @description the person's e-mail or unique local part */
                    login?: string;
                    /** @description SHA256:… (sshd %f) */
                    fingerprint?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                /** @description the key id, for `fleetgate ssh-proxy <id>` */
                                id: number;
                                algorithm: string;
                                /** @description "<algorithm> <base64>", as in authorized_keys */
                                publicKey: string;
                                /** @description SHA256:… as OpenSSH prints it (sshd `%f`) */
                                fingerprint: string;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/terminal": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Open a terminal on the device (WebSocket), or ask whether I may
         * @description With `Connection: Upgrade` and `Upgrade: websocket`, a shell on the device in a pty (xterm-256color), as `ssh <login>+<device>@gw` gives: operators and above (viewers get 403), through the agent's exec service; 503 when the device is offline. `?cols=&rows=` set the initial size (default 80×24, at most 1000). Signed in by the session cookie, the upgrade must come from this origin (`Origin`); scripts send `Authorization: Bearer`. Frames: binary both ways is the terminal's bytes (at most 65536 bytes a frame from the client); the client sends text `{"type":"resize","cols":N,"rows":N}`; the server sends text `{"type":"session","id"}` first, then `{"type":"exit","code"|"signal"}` or `{"type":"ended","reason"}` last, and closes with 1000 (exited), 1001 (server stopping), 1007 (invalid message), 1009 (frame too big), 4000 (ended by an administrator), 4001 (access revoked) or 4002 (device gone offline). The session is listed in `/api/v1/sessions` (surface `terminal`) and recorded when the organization records sessions. Without the upgrade: whether I may, and whether it would be recorded.
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            device: {
                                id: number;
                                uuid: string;
                                name: string;
                            };
                            /** @description the organization records shell sessions: the terminal's output is kept */
                            recorded: boolean;
                        };
                    };
                };
                /** @description Default Response */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/web-sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Open the web page of one of the device's ports: a single-use link to it
         * @description For people who may open streams to the port (operators and above; viewers get 403), with the port on the device's allow-list (403 otherwise). Answers `url`: the device page's own origin (`<port>-<uuid>.localhost`, `<port>s-…` with `https`) at `/.fleetgate/enter` with a single-use grant, valid 60 s. Opening it sets a cookie for that origin alone (`fleetgate_device_web`, at most 12 h and no longer than this sign-in) and redirects to `/`: from then on that origin is the device's web server, each connection a session (surface `web`). `https: true` speaks TLS to the device (self-signed certificates accepted).
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description the device port its web server listens on */
                        port: number;
                        /**
                         * @description the device serves HTTPS on the port
                         * @default false
                         */
                        https?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @description open it in a new tab, within `expiresAt`; it works once */
                            url: string;
                            /** @description the device page's origin */
                            origin: string;
                            /** @description when the link stops working (epoch milliseconds) */
                            expiresAt: number;
                            device: {
                                id: number;
                                uuid: string;
                                name: string;
                            };
                        };
                    };
                };
                /** @description Default Response */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/diagnostics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The device's stored diagnostics runs, newest first, without their checks (operators and above) */
        get: {
            parameters: {
                query?: {
                    /** @description items per page (1-500, default 50) */
                    limit?: number;
                    /** @description page number, from 1 */
                    page?: number;
                };
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                device: {
                                    id: number;
                                    uuid: string;
                                };
                                /** @description the session of the run (GET /api/v1/sessions/{sessionId}) */
                                sessionId: string;
                                requestedBy: {
                                    id: number | null;
                                    label: string;
                                };
                                /** @description ISO 8601 time (UTC) */
                                startedAt: string;
                                /** @description ISO 8601 time (UTC) */
                                finishedAt: string;
                                durationMs: number;
                                /** @description the version of the agent's set of checks */
                                version: number;
                                agentVersion: string;
                                /**
                                 * @description the worst status among the checks
                                 * @enum {string}
                                 */
                                status: "ok" | "warning" | "failed" | "unavailable" | "timed_out";
                                /** @description how many checks came out in each status */
                                counts: {
                                    ok: number;
                                    warning: number;
                                    failed: number;
                                    unavailable: number;
                                    timed_out: number;
                                };
                            }[];
                            /** @description items matching the filters, over all pages */
                            total: number;
                            page: number;
                            limit: number;
                        };
                    };
                };
            };
        };
        put?: never;
        /**
         * Run the device's remote diagnostics now and store the report (operators and above)
         * @description The agent runs its fixed set of read-only checks (disk, memory, load, time sync, DNS and TCP reachability of the server, the agent and its tunnel, network interfaces, failed systemd units, recent kernel messages), each with its own timeout, and answers one report, stored with the device’s history (the newest 50). Needs `device.diagnose` (operators and above), not shell rights; viewers get 403. The run is a session (surface `diagnostics`) and is audited. Answers within 20 s: 503 at once when the device is offline, or when it does not answer in time; 409 when the device is decommissioned or its agent is too old for diagnostics (`details.reason: 'agent_too_old'`); 502 when the device's report is malformed or over 256 KiB (nothing is stored).
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            device: {
                                id: number;
                                uuid: string;
                            };
                            /** @description the session of the run (GET /api/v1/sessions/{sessionId}) */
                            sessionId: string;
                            requestedBy: {
                                id: number | null;
                                label: string;
                            };
                            /** @description ISO 8601 time (UTC) */
                            startedAt: string;
                            /** @description ISO 8601 time (UTC) */
                            finishedAt: string;
                            durationMs: number;
                            /** @description the version of the agent's set of checks */
                            version: number;
                            agentVersion: string;
                            /**
                             * @description the worst status among the checks
                             * @enum {string}
                             */
                            status: "ok" | "warning" | "failed" | "unavailable" | "timed_out";
                            /** @description how many checks came out in each status */
                            counts: {
                                ok: number;
                                warning: number;
                                failed: number;
                                unavailable: number;
                                timed_out: number;
                            };
                            checks: {
                                /** @description stable identifier: disk, memory, load, time-sync, dns, tcp, agent… */
                                id: string;
                                title: string;
                                /** @enum {string} */
                                status: "ok" | "warning" | "failed" | "unavailable" | "timed_out";
                                summary: string;
                                durationMs: number;
                                /** @description the check's measurements */
                                data: {
                                    [key: string]: unknown;
                                };
                            }[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/diagnostics/{runId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One stored diagnostics run with its checks (operators and above) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    runId: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: number;
                            device: {
                                id: number;
                                uuid: string;
                            };
                            /** @description the session of the run (GET /api/v1/sessions/{sessionId}) */
                            sessionId: string;
                            requestedBy: {
                                id: number | null;
                                label: string;
                            };
                            /** @description ISO 8601 time (UTC) */
                            startedAt: string;
                            /** @description ISO 8601 time (UTC) */
                            finishedAt: string;
                            durationMs: number;
                            /** @description the version of the agent's set of checks */
                            version: number;
                            agentVersion: string;
                            /**
                             * @description the worst status among the checks
                             * @enum {string}
                             */
                            status: "ok" | "warning" | "failed" | "unavailable" | "timed_out";
                            /** @description how many checks came out in each status */
                            counts: {
                                ok: number;
                                warning: number;
                                failed: number;
                                unavailable: number;
                                timed_out: number;
                            };
                            checks: {
                                /** @description stable identifier: disk, memory, load, time-sync, dns, tcp, agent… */
                                id: string;
                                title: string;
                                /** @enum {string} */
                                status: "ok" | "warning" | "failed" | "unavailable" | "timed_out";
                                summary: string;
                                durationMs: number;
                                /** @description the check's measurements */
                                data: {
                                    [key: string]: unknown;
                                };
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/ports/{port}/vnc": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Open the device's VNC server in the browser (WebSocket), or ask whether I may
         * @description With `Connection: Upgrade` and `Upgrade: websocket`, the bytes of the VNC server on this port of the device, as websockify carries them (what noVNC speaks): binary frames both ways (at most 1048576 bytes a frame from the client), subprotocol `binary` when asked for. For operators and above (viewers get 403), the port on the device's allow-list (403 otherwise; allow 5900 with `PUT /api/v1/devices/{device}/allowed-ports`); 409 when the device is decommissioned, 503 when it is offline or refuses the port. Signed in by the session cookie, the upgrade must come from this origin (`Origin`); scripts send `Authorization: Bearer`. The 101 answer names the session in `Fleetgate-Session`; it is listed in `/api/v1/sessions` (surface `vnc`). Closes with 1000 (the VNC server closed the connection), 1001 (server stopping), 1003 (a text frame), 1009 (frame too big), 4000 (ended by an administrator), 4001 (access revoked) or 4002 (device gone offline). Without the upgrade: whether I may, and the device's allow-list.
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates */
                    device: number | string;
                    port: number;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @description the device's port allow-list */
                            ports: number[];
                            /**
                             * @description where the list comes from
                             * @enum {string}
                             */
                            source: "device" | "fleet" | "default";
                            port: number;
                            /** @description whether the port is on the allow-list: the VNC viewer may open it */
                            allowed: boolean;
                        };
                    };
                };
                /** @description Default Response */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/file-transfer": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * This server's file transfer limit
         * @description The largest file that may be uploaded to or downloaded from a device, in bytes (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`), so that a client can refuse a larger one before sending it.
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            maxBytes: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/devices/{device}/files": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download a file from the device
         * @description Streams the regular file at `path` on the device as `application/octet-stream` (`Content-Disposition: attachment`), with `Content-Length` and its SHA-256 ahead in `X-Content-SHA256` (hex) and `Repr-Digest`. The agent hashes the file, then sends it while hashing it again; the server checks the bytes as they pass: if they differ (the file changed meanwhile), the response is cut short, never completed. Operators and above (a shell right, as scp: viewers get 403); 404 when the file does not exist, 403 when the agent's user may not read it, 409 when it is a directory or not a regular file, 413 over the server's limit (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`), 503 when the device is offline. Audited and listed in sessions (surface `files`).
         */
        get: {
            parameters: {
                query: {
                    /** @description absolute path of the file on the device */
                    path: string;
                };
                header?: never;
                path: {
                    /** @description the device: id, uuid, unique uuid prefix or name */
                    device: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                413: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                503: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        /**
         * Upload a file to the device
         * @description The request body is the file, sent as is (any content type, e.g. `application/octet-stream`), with `Content-Length` (or chunked). It is written to a temporary file beside `path` and renamed into place only when the size and SHA-256 the agent computed of what it wrote equal what the server received, and the `sha256` given (query, or header `X-Content-SHA256`) when there is one: the path then holds the whole file, or what it held before. `mode` (octal, e.g. `0755`) sets the permissions; default 0644, or those of the file replaced. Operators and above (a shell right, as scp: viewers get 403); 404 when the directory does not exist, 403 when the agent's user may not write there, 409 when `path` is a directory, 413 over the server's limit (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`; refused before reading when `Content-Length` says so), 422 when the SHA-256 or size differ, 503 when the device is offline. Cookie sign-ins must come from fleetgate's own pages (CSRF). Audited and listed in sessions (surface `files`).
         */
        put: {
            parameters: {
                query: {
                    /** @description absolute path of the file on the device */
                    path: string;
                    /** @description SHA-256 of the file (hex); the agent checks it */
                    sha256?: string;
                    /** @description permissions of the file (octal) */
                    mode?: string;
                };
                header?: never;
                path: {
                    /** @description the device: id, uuid, unique uuid prefix or name */
                    device: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            path: string;
                            /** @description bytes written */
                            size: number;
                            /** @description SHA-256 of what the device wrote to disk (hex), equal to what was sent */
                            sha256: string;
                            /** @description the session id: GET /api/v1/sessions/{sessionId} */
                            session: string;
                        };
                    };
                };
                /** @description Default Response */
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                413: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                422: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
                /** @description Default Response */
                503: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            error: {
                                code: string;
                                message: string;
                                details?: unknown;
                            };
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/device-auth/auth_requests": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Signed device auth request (Mender): body {"id_data","pubkey","tenant_token"}, header X-MEN-Signature = base64 signature of the exact body. 200 answers the device token (application/jwt); 401 while pending, rejected or decommissioned */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: never;
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export type operations = Record<string, never>;
