/* Every function of the 2.40 and 3.0 lists, for building the tables. */
#ifndef VP_FUNCTIONS_H
#define VP_FUNCTIONS_H

#include "pkcs11_v3.h"

#define VP_FUNCTIONS_2_40(F) \
	F(C_Initialize) F(C_Finalize) F(C_GetInfo) F(C_GetFunctionList) F(C_GetSlotList) \
	F(C_GetSlotInfo) F(C_GetTokenInfo) F(C_GetMechanismList) F(C_GetMechanismInfo) \
	F(C_InitToken) F(C_InitPIN) F(C_SetPIN) F(C_OpenSession) F(C_CloseSession) \
	F(C_CloseAllSessions) F(C_GetSessionInfo) F(C_GetOperationState) F(C_SetOperationState) \
	F(C_Login) F(C_Logout) F(C_CreateObject) F(C_CopyObject) F(C_DestroyObject) \
	F(C_GetObjectSize) F(C_GetAttributeValue) F(C_SetAttributeValue) F(C_FindObjectsInit) \
	F(C_FindObjects) F(C_FindObjectsFinal) F(C_EncryptInit) F(C_Encrypt) F(C_EncryptUpdate) \
	F(C_EncryptFinal) F(C_DecryptInit) F(C_Decrypt) F(C_DecryptUpdate) F(C_DecryptFinal) \
	F(C_DigestInit) F(C_Digest) F(C_DigestUpdate) F(C_DigestKey) F(C_DigestFinal) \
	F(C_SignInit) F(C_Sign) F(C_SignUpdate) F(C_SignFinal) F(C_SignRecoverInit) \
	F(C_SignRecover) F(C_VerifyInit) F(C_Verify) F(C_VerifyUpdate) F(C_VerifyFinal) \
	F(C_VerifyRecoverInit) F(C_VerifyRecover) F(C_DigestEncryptUpdate) \
	F(C_DecryptDigestUpdate) F(C_SignEncryptUpdate) F(C_DecryptVerifyUpdate) \
	F(C_GenerateKey) F(C_GenerateKeyPair) F(C_WrapKey) F(C_UnwrapKey) F(C_DeriveKey) \
	F(C_SeedRandom) F(C_GenerateRandom) F(C_GetFunctionStatus) F(C_CancelFunction) \
	F(C_WaitForSlotEvent)

#define VP_FUNCTIONS_3_0(F) \
	F(C_GetInterfaceList) F(C_GetInterface) F(C_LoginUser) F(C_SessionCancel) \
	F(C_MessageEncryptInit) F(C_EncryptMessage) F(C_EncryptMessageBegin) \
	F(C_EncryptMessageNext) F(C_MessageEncryptFinal) F(C_MessageDecryptInit) \
	F(C_DecryptMessage) F(C_DecryptMessageBegin) F(C_DecryptMessageNext) \
	F(C_MessageDecryptFinal) F(C_MessageSignInit) F(C_SignMessage) F(C_SignMessageBegin) \
	F(C_SignMessageNext) F(C_MessageSignFinal) F(C_MessageVerifyInit) F(C_VerifyMessage) \
	F(C_VerifyMessageBegin) F(C_VerifyMessageNext) F(C_MessageVerifyFinal)

/* The 3.0 functions p11-kit 0.24's header does not declare. */
CK_RV C_GetInterfaceList(CK_INTERFACE_PTR, CK_ULONG_PTR);
CK_RV C_GetInterface(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
CK_RV C_LoginUser(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR, CK_ULONG);
CK_RV C_SessionCancel(CK_SESSION_HANDLE, CK_FLAGS);
CK_RV C_MessageEncryptInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
CK_RV C_EncryptMessage(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
CK_RV C_EncryptMessageBegin(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
CK_RV C_EncryptMessageNext(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR, CK_FLAGS);
CK_RV C_MessageEncryptFinal(CK_SESSION_HANDLE);
CK_RV C_MessageDecryptInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
CK_RV C_DecryptMessage(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
CK_RV C_DecryptMessageBegin(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
CK_RV C_DecryptMessageNext(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR, CK_FLAGS);
CK_RV C_MessageDecryptFinal(CK_SESSION_HANDLE);
CK_RV C_MessageSignInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
CK_RV C_SignMessage(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
CK_RV C_SignMessageBegin(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG);
CK_RV C_SignMessageNext(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
CK_RV C_MessageSignFinal(CK_SESSION_HANDLE);
CK_RV C_MessageVerifyInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
CK_RV C_VerifyMessage(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
CK_RV C_VerifyMessageBegin(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG);
CK_RV C_VerifyMessageNext(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
CK_RV C_MessageVerifyFinal(CK_SESSION_HANDLE);

#endif
